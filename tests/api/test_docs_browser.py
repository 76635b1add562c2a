"""The API docs page (Swagger UI) in headless Chromium: it draws every endpoint from the
schema under the strict Content-Security-Policy, with nothing refused and no script error."""

from __future__ import annotations

from typing import Any

import pytest

from ..queries.test_e2e_browser import CHROMIUM, browser_page, shot  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def test_the_docs_page_draws_the_api_in_a_browser(
    live_server: Any,
    browser_page: Any,  # noqa: F811 - the fixture imported above
) -> None:
    page = browser_page
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.get_by_text("E-Modal Portal API").first).to_be_visible()
    expect(
        page.locator(".opblock-summary-path", has_text="/api/v1/queries/{id}/cancel/")
    ).to_be_visible()
    expect(page.locator("button.authorize")).to_be_visible()
    shot(page, "08-api-docs")
    assert refused == []
    assert page.script_errors == []
