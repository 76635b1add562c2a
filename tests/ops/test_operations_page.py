"""The operations page: charts drawn on the server from the database's figures, for staff
with its own permission, in a bounded number of SQL queries."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ops_app.charts import Series, bar_chart, column_chart, nice_ceiling
from ops_app.dashboard import operations_figures, quantile
from ops_app.models import BUCKETS, UpstreamCallStat
from ops_app.recording import add_duration
from queries_app.models import Query
from sessions_app.models import Account, SessionEvent

from ..conftest import make_account
from ..portal.test_http_surface import STRICT_POLICY, inline_code, policy

pytestmark = pytest.mark.django_db

URL = "/admin/ops_app/operations/"


@pytest.fixture
def ops_staff(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("olga", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_operations"))
    return user


def ops_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_history(
    accounts: int = 3, per_day: int = 2, days: int = 5, prefix: str = "acct"
) -> dict[str, Any]:
    """Captchas, queries (some needing a login), failures and call latencies over a few days.

    Each day's rows land within twenty minutes before ``now``; just after local midnight
    that would be yesterday, so ``now`` is then moved to one in the morning (the page
    counts by local day and does not mind rows a little ahead of the clock).
    """
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    now = max(now, midnight + timedelta(hours=1))
    made = [make_account(f"{prefix}{i}") for i in range(accounts)]
    for age in range(days):
        moment = now - timedelta(days=age, minutes=5)
        for account in made:
            for n in range(per_day):
                started = moment - timedelta(minutes=10 + n)
                query = Query.objects.create(
                    account=account,
                    kind="containers",
                    status="succeeded" if n % 2 == 0 else "failed",
                    error="" if n % 2 == 0 else "Upstream unavailable.",
                    created_at=started,
                    started_at=started,
                    finished_at=started + timedelta(minutes=1),
                )
                if n == 0:  # the first run of the day logged in
                    SessionEvent.objects.create(
                        account=account,
                        kind="created",
                        captcha_spent=True,
                        created_at=query.started_at + timedelta(seconds=5),
                    )
        for seconds in (0.3, 0.4, 40.0):
            add_duration(
                UpstreamCallStat,
                labels={"server": "http://sim:1", "endpoint": "/get_containers", "outcome": "ok"},
                seconds=seconds,
                at=moment,
            )
    return {"accounts": made, "now": now}


def test_only_staff_with_the_permission_open_it(
    ops_staff: Any, staff: Any, django_user_model: Any
) -> None:
    assert Client().get(URL).status_code == 302  # to the admin's login
    plain_staff = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    assert ops_client(plain_staff).get(URL).status_code == 403
    index = ops_client(plain_staff).get("/admin/")
    assert b"ops_app/operations" not in index.content
    assert ops_client(ops_staff).get(URL).status_code == 200
    assert ops_client(staff).get(URL).status_code == 200  # a superuser holds every permission
    assert b"ops_app/operations" in ops_client(ops_staff).get("/admin/").content
    assert ops_client(ops_staff).get(URL + "add/").status_code == 403


def test_the_charts_show_what_the_database_holds(ops_staff: Any) -> None:
    history = make_history(accounts=2, per_day=2, days=3)
    rejected = make_account(
        "rita",
        credential_state=Account.CredentialState.REJECTED,
        credential_error="Invalid username or password",
    )
    make_account("pete", appointment_error="Truck plate refused")
    make_account("fine")  # needs nobody
    SessionEvent.objects.create(account=rejected, kind="rejected", captcha_spent=True)
    today = timezone.localtime(history["now"]).strftime("%m-%d")

    response = ops_client(ops_staff).get(URL, {"days": 7})
    assert response.status_code == 200
    html = response.content.decode()
    assert policy(response) == STRICT_POLICY
    assert set(inline_code(response).counts().values()) == {0}
    assert html.count('<svg class="chart"') == 6

    captchas = section(html, "captchas")
    # Two accounts logged in once a day each; the rejected login today.
    assert f"<title>{today}: Created (captcha spent) 2</title>" in captchas
    assert f"<title>{today}: Credentials rejected 1</title>" in captchas
    assert "<strong>7</strong>" in captchas
    per_account = section(html, "captchas-per-account")
    assert "<title>acct0: solves 3</title>" in per_account
    assert "<title>rita: solves 1</title>" in per_account
    queries = section(html, "queries")
    assert f"<title>{today}: Succeeded 2</title>" in queries
    assert f"<title>{today}: Failed 2</title>" in queries
    share = section(html, "login-share")
    assert "<strong>6</strong> of 12 queries" in share  # the first run of each day
    assert f"<title>{today}: needed a login 50 %</title>" in share
    latency = section(html, "latency")
    # Per day 0.3 s and 0.4 s (bucket 0.25–0.5 s) and 40 s (30–60 s), three days.
    assert "<title>/get_containers: p50 0.44 s</title>" in latency  # 0.25 + 0.25 × 4.5/6
    assert "<title>/get_containers: p95 55.5 s</title>" in latency  # 30 + 30 × 2.55/3
    failures = section(html, "failures")
    assert "<title>Upstream unavailable.: queries 6</title>" in failures
    person = section(html, "needing-a-person")
    assert "rita" in person and "Invalid username or password" in person
    assert "pete" in person and "Truck plate refused" in person
    assert "fine" not in person and "acct0" not in person


def section(html: str, name: str) -> str:
    found = re.search(rf'<section class="ops-card" id="{name}">(.*?)</section>', html, re.S)
    assert found, name
    return found.group(1)


def test_a_period_outside_the_choices_is_refused(ops_staff: Any) -> None:
    for days in ("5", "x", "-7"):
        response = ops_client(ops_staff).get(URL, {"days": days})
        assert response.status_code == 400
        assert b"Select a valid choice" in response.content
        assert b"Showing the last 30 days" in response.content
    assert ops_client(ops_staff).get(URL, {"days": "90"}).status_code == 200


def test_the_sql_it_runs_does_not_grow_with_the_data(
    ops_staff: Any, django_assert_max_num_queries: Any
) -> None:
    client = ops_client(ops_staff)
    client.get(URL)  # sessions, permissions and content types cached as in real use

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL, {"days": 30}).status_code == 200
        return len(captured)

    make_history(accounts=1, per_day=1, days=1)
    small = queries_for_page()
    make_history(accounts=6, per_day=4, days=20, prefix="more")
    for i in range(8):
        make_account(f"stuck{i}", credential_state=Account.CredentialState.KEY_SUSPECT)
    assert queries_for_page() == small
    with django_assert_max_num_queries(14):
        client.get(URL, {"days": 90})


def test_quantiles_interpolate_within_buckets() -> None:
    counts = [0] * len(BUCKETS)
    counts[BUCKETS.index(1)] = 10  # ten calls between 0.5 s and 1 s
    assert quantile(0.5, counts, 10) == pytest.approx(0.75)
    assert quantile(0.95, counts, 10) == pytest.approx(0.975)
    assert quantile(0.5, [0] * len(BUCKETS), 0) == 0
    # Above the last bound: that bound.
    assert quantile(0.5, [0] * len(BUCKETS), 4) == BUCKETS[-1]


def test_charts_escape_their_text_and_scale_to_round_numbers() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 7, 11, 240)] == [1, 0.5, 10, 20, 250]
    svg = bar_chart(label="x", labels=['<script>"x"</script>'], series=[Series("n", [3])])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "No data in this period." in column_chart(
        label="y", categories=["a"], series=[Series("n", [0])]
    )
    svg = column_chart(label="y", categories=["a", "b"], series=[Series("n", [1, 3])])
    heights = [float(h) for h in re.findall(r'<rect class="s0"[^>]* height="([\d.]+)"', svg)]
    assert heights[1] == pytest.approx(3 * heights[0])


def test_failure_reasons_only_count_this_week(ops_staff: Any) -> None:
    account = make_account("old")
    long_ago = timezone.now() - timedelta(days=20)
    Query.objects.create(
        account=account,
        kind="timeline",
        status="failed",
        error="Old reason",
        created_at=long_ago,
        finished_at=long_ago,
    )
    Query.objects.create(
        account=account,
        kind="timeline",
        status="failed",
        error="New reason",
        finished_at=timezone.now(),
    )
    figures = operations_figures(days=30)
    assert figures.failure_reasons == [("New reason", 1)]
