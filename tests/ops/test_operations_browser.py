"""The operations page in headless Chromium: its charts draw (no script, the strict policy
in force, nothing refused) and a screenshot is saved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from ops_app.models import UpstreamCallStat
from ops_app.recording import add_duration
from sessions_app.models import Account, SessionEvent

from ..conftest import make_account
from ..queries.test_e2e_browser import CHROMIUM, browser_page, orm, shot  # noqa: F401 - fixtures
from .test_operations_page import URL, make_history

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
PASSWORD = "operations page password"


def test_the_operations_page_draws_its_charts_in_a_browser(
    live_server: Any,
    browser_page: Any,  # noqa: F811 - the fixture imported above
    orm: Callable[..., Any],  # noqa: F811
    django_user_model: Any,
) -> None:
    def setup() -> None:
        make_history(accounts=4, per_day=3, days=12)
        now = timezone.now()
        rita = make_account(
            "rita",
            credential_state=Account.CredentialState.REJECTED,
            credential_error="LoginErrorType.INVALID_CREDENTIALS",
        )
        make_account("pete", appointment_error="Truck plate 7ABC123 not in the list")
        for age in range(0, 12, 3):
            SessionEvent.objects.create(
                account=rita,
                kind="rejected",
                captcha_spent=True,
                created_at=now - timedelta(days=age),
            )
            SessionEvent.objects.create(
                account=rita,
                kind="failed",
                captcha_spent=True,
                created_at=now - timedelta(days=age + 1),
            )
        for endpoint, seconds in (
            ("/get_session", (3, 40, 70)),
            ("/check_appointments", (4, 8, 30)),
            ("/get_info_bulk", (1, 2, 6)),
        ):
            for value in seconds:
                add_duration(
                    UpstreamCallStat,
                    labels={"server": "http://sim:1", "endpoint": endpoint, "outcome": "ok"},
                    seconds=value,
                    at=now,
                )
        user = django_user_model.objects.create_user("olga", password=PASSWORD, is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="view_operations"))

    orm(setup)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next={URL}")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#captchas svg.chart")).to_be_visible()
    charts = page.locator("svg.chart")
    assert charts.count() == 6
    # Drawn, and styled by ops.css (the bars' colour comes from a class, not the default black).
    box = page.locator("#queries svg.chart").bounding_box()
    assert box["width"] > 300 and box["height"] > 150
    bar = page.locator("#captchas rect.s0").first
    assert bar.evaluate("el => getComputedStyle(el).fill") == "rgb(65, 118, 144)"
    assert page.locator("#queries rect").count() > 12
    page.select_option("#id_days", "7")
    page.click("#period-form button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}{URL}?days=7")
    page.select_option("#id_days", "30")
    page.click("#period-form button[type=submit]")
    expect(page.locator("#captchas svg.chart")).to_be_visible()
    shot(page, "07-operations")
    assert page.script_errors == []
