"""`make serve` for real: production settings (DEBUG off) under gunicorn with its task
cluster, driven in headless Chromium. The admin is styled (WhiteNoise serves the collected,
hashed, compressed files with far-future caching) and a running query's progress moves on
its page without a reload.

The served portal has a database of its own: a SQLite file, or (when the suite runs on
PostgreSQL) a database created for the test and dropped after it, and its own Redis database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.db import connection

from ..processes import ROOT
from ..queries.test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from ..served import wait_for_url
from ..sim import SimControl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

PASSWORD = "served portal password"
METRICS_TOKEN = "served-metrics-token"
WAIT_MS = 30_000

SETUP = """
from django.contrib.auth import get_user_model
from sessions_app.models import Account
User = get_user_model()
User.objects.create_superuser("boss", "boss@example.com", {password!r})
alice = User.objects.create_user("alice", password={password!r})
Account.objects.create(
    user=alice, emodal_username="alice-emodal", password="alice-password",
    captcha_api_key="alice-captcha-key", trucking_company="K & R TRANSPORTATION LLC",
    truck_plate="7ABC123",
)
"""


def _postgres(dbname: str) -> Any:
    import psycopg

    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        dbname=dbname,
        autocommit=True,
    )


@pytest.fixture
def served_database(tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL of the served portal's own."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'served.sqlite3'}"
        return
    db = connection.settings_dict
    name = f"{db['NAME']}_served"[:63]
    with _postgres("postgres") as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    try:
        yield f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    finally:
        with _postgres("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def served_redis_url() -> str:
    """Another database of the suite's Redis: the served cluster must not take the suite's
    tasks, nor the suite its."""
    url = django_settings.REDIS_URL
    found = re.match(r"^(.*/)(\d+)$", url)
    base, number = (found.group(1), int(found.group(2))) if found else (url.rstrip("/") + "/", 0)
    return f"{base}{number - 1 if number else 1}"


class Served:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.log = Path(tempfile.mkstemp(prefix="serve-", suffix=".log")[1])
        self.process = subprocess.Popen(
            [sys.executable, "scripts/serve.py"],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = wait_for_url(self.log, self.process, timeout=120)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def children(self) -> list[int]:
        listing = subprocess.run(
            ["ps", "-o", "pid=", "-g", str(self.process.pid)], capture_output=True, text=True
        )
        return [int(pid) for pid in listing.stdout.split()]

    def stop(self) -> int:
        """SIGTERM, as an operator's Ctrl-C or a service manager would send."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
                raise AssertionError(f"make serve did not stop:\n{self.log.read_text()}") from None
        return self.process.returncode


@pytest.fixture
def served(sim: SimControl, served_database: str, tmp_path: Path) -> Iterator[Served]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "DJANGO_SETTINGS_MODULE", "REDIS_URL", "DATABASE_URL")
    }
    env.update(
        DATABASE_URL=served_database,
        SECRET_KEY="served-portal-secret-key-" + "x" * 40,
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        # Plain HTTP on loopback: no redirect to HTTPS (behind a proxy, it would be on).
        SECURE_SSL_REDIRECT="false",
        STATIC_ROOT=str(tmp_path / "static"),
        MEDIA_ROOT=str(tmp_path / "media"),
        EMODAL_API_URL=sim.url,
        SERVE_BIND="127.0.0.1:0",
        SERVE_WEB_WORKERS="2",
        SERVE_CLUSTERS="1",
        Q_WORKERS="2",
        METRICS_TOKEN=METRICS_TOKEN,
        LOG_LEVEL="WARNING",
    )
    if django_settings.REDIS_URL:
        # Not emptied: it may be someone else's too. A task left there by an earlier run names
        # a query of a database since dropped, and finds nothing to do.
        env["REDIS_URL"] = served_redis_url()
    portal = Served(env)
    try:
        portal.manage("shell", "-c", SETUP.format(password=PASSWORD))
        yield portal
    finally:
        group = portal.children()
        status = portal.stop()
        assert status == 0, portal.log.read_text()
        # Every process it started is gone (gunicorn's workers, the cluster's).
        left = [pid for pid in group if _alive(pid)]
        assert left == [], left
        portal.log.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.problems = []
    page.responses = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: page.responses.append(r))
    return page


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def static_response(page: Any, pattern: str) -> Any:
    found = [r for r in page.responses if re.search(pattern, r.url)]
    assert found, f"no response for {pattern}: {[r.url for r in page.responses]}"
    return found[-1]


def assert_far_future(response: Any) -> None:
    assert response.status == 200
    cache_control = response.all_headers()["cache-control"]
    assert "max-age=315360000" in cache_control and "immutable" in cache_control


def test_make_serve_styles_the_admin_and_follows_a_running_query(
    served: Served, sim: SimControl, browser: Any
) -> None:
    assert served.env.get("DEBUG") is None  # production settings, as make serve insists
    # The admin, styled: its stylesheet under a hashed name, cached for a year.
    page = new_page(browser)
    page.goto(f"{served.url}/admin/login/")
    header = page.locator("#header")
    expect(header).to_be_visible()
    default = page.evaluate(
        """() => { const probe = document.createElement('div');
                   document.body.appendChild(probe);
                   const color = getComputedStyle(probe).backgroundColor;
                   probe.remove(); return color; }"""
    )
    assert header.evaluate("el => getComputedStyle(el).backgroundColor") != default
    assert header.evaluate("el => getComputedStyle(el).display") == "flex"  # admin's CSS
    assert_far_future(static_response(page, r"/static/admin/css/base\.[0-9a-f]{12}\.css$"))
    page.fill("#id_username", "boss")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("E-Modal Portal")
    expect(page.locator("#content h1")).to_contain_text("Administration")
    shot(page, "served-admin")
    assert [f"{r.status} {r.url}" for r in page.responses if r.status >= 400] == []
    assert page.problems == []

    # A dispatcher's availability run, slowed so that it takes a while; its page follows it.
    sim.configure(latencies={"check_appointments_import": 3000, "check_appointments_export": 3000})
    page = new_page(browser)
    page.goto(f"{served.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    # A login lands on the containers board; the queries are one click away.
    expect(page).to_have_url(f"{served.url}/containers/")
    page.click("nav >> text=My queries")
    expect(page).to_have_url(f"{served.url}/queries/")
    assert_far_future(static_response(page, r"/static/queries/queries\.[0-9a-f]{12}\.js$"))
    page.select_option("#id_kind", "availability")
    page.click("#start-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/queries/\d+/$"))
    page.evaluate("window.stillTheSamePage = true")

    # The status and its progress bar read together, in one look at the page: the page may
    # swap in the finished run's status (a full bar, 1 of 1) between two separate reads.
    read_status = """() => { const status = document.querySelector('#query-status');
                             const bar = status && status.querySelector('progress');
                             return [status ? status.innerText : '',
                                     bar ? bar.getAttribute('value') || '' : null]; }"""
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while True:
        text, value = page.evaluate(read_status)
        if "Succeeded" in text:
            break
        assert time.monotonic() < deadline, f"the run did not end; progress seen: {seen}"
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
            if len(seen) == 3:
                shot(page, "served-running-query")
        page.wait_for_timeout(100)
    moving = [int(v) for v in seen if v.isdigit()]
    assert len(set(moving)) >= 3, seen  # at least three different counts on one page
    assert moving == sorted(moving), seen
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#containers-table")).to_be_visible(timeout=WAIT_MS)
    assert [r for r in page.responses if r.status >= 400] == []
    assert page.problems == []

    # The served portal answers /metrics for its bearer, with what its processes recorded.
    text = requests.get(
        f"{served.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    ).text
    assert re.search(
        r'emodal_queries_finished_total\{kind="availability",status="succeeded"\} 1', text
    )
    assert re.search(r'emodal_captcha_solves_total\{outcome="created"\} 1', text)
    assert requests.get(f"{served.url}/metrics", timeout=10).status_code == 403
