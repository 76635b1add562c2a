"""The portal against the upstream as it really behaves (docs/upstream-contract.md): real sheets,
terminal names, the availability rule, poisoned browsers, HTML answers, stale sheets."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from queries_app.models import AppointmentCheck, Query, Terminal
from queries_app.services import start_query
from sessions_app.models import Account, SessionEvent
from sessions_app.services import SessionManager

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)

# Read here independently of the portal's parsing: `N/A`, optionally masked, is no value.
NO_VALUE = re.compile(r"^N/A( \*+)?$")


def value(cell: str) -> str:
    return "" if NO_VALUE.match(cell) else cell


def lfd_gtd(cell: str) -> tuple[dt.date | None, dt.date | None]:
    if NO_VALUE.match(cell):
        return None, None
    first, second = cell.split(" - ")
    return (
        dt.datetime.strptime(first, "%m/%d/%Y").date(),  # noqa: DTZ007
        dt.datetime.strptime(second, "%m/%d/%Y").date(),  # noqa: DTZ007
    )


def planned(row: dict[str, str], passed_pregate: bool | None) -> tuple[str, str]:
    """(move type, terminal code) by the operators' rule in the contract."""
    current = value(row["Current Loc"])
    if row["Trade Type"] == "EXPORT":
        return "DROP FULL", value(row["Origin"]) or current
    if passed_pregate:
        return "DROP EMPTY", value(row["Origin"]) or current
    return "PICK FULL", value(row["Destination"]) or current


def run(account: Account, queue: TaskQueue, kind: str = "availability") -> Query:
    return run_through_retries(start_query(account=account, kind=kind)[0], queue)


def test_an_availability_run_on_a_real_sheet_checks_exactly_what_the_rule_selects(
    db: Any, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    account = make_account("dora", emodal_username="dora+c385")
    served = sim.containers("dora+c385")
    rows, details = served["containers"], served["details"]
    assert len(rows) == 385

    query = run(account, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error

    # Every row stored, N/A read as no value, both dates of the LFD/GTD range kept.
    stored = {row.container_number: row for row in query.containers.all()}
    assert len(stored) == 385
    with_dates = 0
    for row in rows:
        kept = stored[row["Container #"]]
        assert (kept.last_free_day, kept.good_through) == lfd_gtd(row["LFD/GTD"])
        with_dates += kept.last_free_day is not None
        assert kept.status == value(row["Status"])
        assert kept.destination == value(row["Destination"])
        assert "N/A" not in (kept.trade_type, kept.origin, kept.fees, kept.tags)
    assert with_dates > 300

    # The candidates are exactly those with Holds NO and no pregate ticket.
    candidates = {
        row["Container #"]: row
        for row in rows
        if row["Holds"] == "NO" and NO_VALUE.match(row["Pregate Ticket#"])
    }
    assert 10 <= len(candidates) <= 60
    checks = {check.container_number: check for check in query.checks.all()}
    assert set(checks) == set(candidates)
    assert query.progress_done == query.progress_total == len(candidates)

    names = dict(Terminal.objects.exclude(name="").values_list("code", "name"))
    sent = {}
    for call in sim.calls("/check_appointments"):
        params = call["params"]
        sent[params.get("container_id") or params.get("booking_number")] = call
    assert all(call["params"]["debug"] is False for call in sim.calls() if call["params"])
    outcomes: dict[str, int] = {}
    for number, row in candidates.items():
        check = checks[number]
        outcomes[check.outcome] = outcomes.get(check.outcome, 0) + 1
        move, code = planned(row, details[number]["passed_pregate"])
        assert (check.move_type, check.terminal_code) == (move, code)
        if check.outcome == AppointmentCheck.Outcome.NOT_SENT:
            if row["Trade Type"] == "EXPORT" and not details[number]["booking_number"]:
                assert check.error == "No booking number is known for this export container."
                continue
            # Failed alone, naming the code and where to add it; nothing was sent for it.
            assert code not in names
            assert (
                (f"Terminal code {code} has no E-Modal name" in check.error)
                if code
                else ("No terminal is known" in check.error)
            )
            assert number not in sent and details[number]["booking_number"] not in sent
            continue
        identifier = number if row["Trade Type"] == "IMPORT" else check.booking_number
        params = sent[identifier]["params"]
        assert params["terminal"] == names[code] == check.terminal
        assert params["move_type"] == move
        assert params["trucking_company"] == account.trucking_company
        if row["Trade Type"] == "IMPORT":
            assert params.get("line") == (value(row["Line"]) or None)
            assert params.get("equip_size") == (value(row["Size Type"]) or None)
            # The page's placeholder is no slot; real slots are counted and the earliest kept.
            if details[number]["has_slots"]:
                assert check.outcome == AppointmentCheck.Outcome.AVAILABLE
                assert check.slot_count == len(check.slot_texts) > 0
                assert check.earliest_slot is not None
            else:
                assert check.outcome == AppointmentCheck.Outcome.NONE
                assert (check.slot_count, check.slot_texts, check.earliest_slot) == (0, [], None)
        else:
            assert params["booking_number"] == details[number]["booking_number"]
    assert set(outcomes) >= {
        AppointmentCheck.Outcome.AVAILABLE,
        AppointmentCheck.Outcome.NONE,
        AppointmentCheck.Outcome.NOT_SENT,
    }
    assert len(sent) == sum(
        n for outcome, n in outcomes.items() if outcome != AppointmentCheck.Outcome.NOT_SENT
    )
    # Codes the sheet named without a name were recorded for staff.
    seen = {value(r[c]) for r in rows for c in ("Origin", "Destination", "Current Loc")}
    unnamed = set(Terminal.objects.unnamed().values_list("code", flat=True))
    assert unnamed == {code for code in seen if code and code not in names}
    stats = sim.stats()
    assert (stats["captcha_solves"], stats["collisions"], stats["appointments_booked"]) == (1, 0, 0)
    assert stats["poisoned_browsers"] == 0  # no check was sent that the page would refuse


def test_a_browser_poisoned_mid_run_costs_one_login_and_every_container_is_accounted_for(
    db: Any, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    account = make_account("eve", emodal_username="eve+c385")
    first = run(account, task_queue)
    assert first.status == Query.Status.SUCCEEDED, first.error
    sent = list(first.checks.exclude(outcome=AppointmentCheck.Outcome.NOT_SENT).order_by("pk"))
    codes = [check.terminal_code for check in sent]
    # A terminal only the second sent check goes to gets a name its page does not list (a
    # staff typo): that one check fails, and poisons the browser for the checks after it.
    code = next(c for c in codes[1:-4] if codes.count(c) == 1)
    Terminal.objects.filter(code=code).update(name=f"{code} Terminal (typo)")
    sim.configure(latencies={"poison_delay": 100})  # about two checks later
    before = sim.stats()

    second = run(account, task_queue)
    assert second.status == Query.Status.SUCCEEDED, second.error
    after = sim.stats()
    assert after["poisoned_browsers"] - before["poisoned_browsers"] == 1
    assert after["captcha_solves"] - before["captcha_solves"] == 1  # one re-login
    replaced = SessionEvent.objects.filter(
        account=account, kind=SessionEvent.Kind.REPLACED, created_at__gte=second.created_at
    )
    assert replaced.count() == 1
    checks = {check.container_number: check for check in second.checks.all()}
    assert set(checks) == {check.container_number for check in first.checks.all()}
    failed = [c for c in checks.values() if c.outcome == AppointmentCheck.Outcome.FAILED]
    assert [c.terminal_code for c in failed] == [code]
    assert "Phase 1 failed - Terminal" in failed[0].error
    others = [c for c in checks.values() if c.terminal_code != code]
    assert all(c.outcome != AppointmentCheck.Outcome.FAILED for c in others)


def test_a_sessions_listing_answering_html_adopts_nothing_and_logs_in(
    alice: Account, sim: SimControl
) -> None:
    sim.fault("/sessions", count=5, mode="non_json", status=500)
    SessionManager().ensure_session(alice)
    alice.refresh_from_db()
    assert alice.session_id
    assert alice.session_created_here
    assert len(sim.calls("/get_session")) == 1
    assert list(alice.events.values_list("kind", flat=True)) == [SessionEvent.Kind.CREATED]


def test_a_session_the_portal_did_not_create_is_never_closed_by_it(
    alice: Account, sim: SimControl
) -> None:
    other = SessionManager()
    # Another system logged in with the same credentials: the portal adopts that session.
    import requests

    requests.post(
        f"{sim.url}/get_session",
        json={
            "username": str(alice.emodal_username),
            "password": str(alice.password),
            "captcha_api_key": str(alice.captcha_api_key),
        },
        timeout=10,
    )
    other.ensure_session(alice)
    alice.refresh_from_db()
    assert not alice.session_created_here
    assert other.drop_session(alice)
    other.refresh_session(alice)
    assert sim.stats()["deleted"] == 0
    assert sim.calls("/sessions/{id}") == []


def test_a_trucking_company_e_modal_does_not_list_stops_the_checks_and_shows_its_options(
    db: Any, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    account = make_account("fred", trucking_company="K&R TRANSPORTATION")
    query = run(account, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    checks = list(query.checks.order_by("pk"))
    assert len(checks) >= 3
    sent = sim.calls("/check_appointments")
    assert len(sent) == 1  # the first one sent failed; the rest would fail the same way
    failed = [c for c in checks if c.outcome == AppointmentCheck.Outcome.FAILED]
    assert len(failed) == 1 and "Option 'K&R TRANSPORTATION' not found" in failed[0].error
    skipped = [c for c in checks if c.outcome == AppointmentCheck.Outcome.NOT_SENT]
    assert len(failed) + len(skipped) == len(checks)
    account.refresh_from_db()
    # The field, and the options E-Modal listed.
    assert account.appointment_error.startswith(
        "E-Modal does not list the account's trucking company “K&R TRANSPORTATION”; ask "
    )
    assert "E-Modal lists: K & R TRANSPORTATION LLC, " in account.appointment_error
    assert any("Not checked: E-Modal does not list" in c.error for c in skipped)
    assert query.appointments.exists()  # the run went on to the appointments sheet

    # The next run sends no check until someone fixes the account.
    again = run(account, task_queue)
    assert len(sim.calls("/check_appointments")) == 1
    assert all(c.outcome == AppointmentCheck.Outcome.NOT_SENT for c in again.checks.all())
    admin = Client()
    admin.force_login(type(account.user).objects.create_superuser("root", "root@example.com", "pw"))
    url = reverse("admin:sessions_app_account_change", args=[account.pk])
    page = admin.get(url).content.decode()
    assert "does not list the account&#x27;s trucking company" in page
    assert "K &amp; R TRANSPORTATION LLC" in page.split("E-Modal lists:")[1]
    assert "the plate used is not knowable" in page
    form = {
        "user": account.user.pk,
        "emodal_username": str(account.emodal_username),
        "upstream_url": "",
        "trucking_company": "K & R TRANSPORTATION LLC",
        "truck_plate": account.truck_plate,
    }
    assert admin.post(url, form).status_code == 302
    account.refresh_from_db()
    assert account.appointment_error == ""


def test_an_appointments_export_that_is_another_sheet_is_never_stored_as_appointments(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    settings.QUERY_RETRY_BASE_SECONDS = 0
    sim.fault("/get_appointments", count=3, mode="stale_sheet")
    query = run(alice, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert not query.appointments.exists()
    assert query.notes.startswith("The account's appointments were not read: Gave up after 3")
    assert query.checks.exists()
    # An appointments query with the same trouble fails, saying why. (The browser hands back
    # the containers sheet it downloaded last.)
    sim.configure(latencies={"download_window": 10**6})
    run(alice, task_queue, kind="containers")
    sim.fault("/get_appointments", count=3, mode="stale_sheet")
    alone = run(alice, task_queue, kind="appointments")
    assert alone.status == Query.Status.FAILED
    assert "instead of the appointments export" in alone.error
    assert not alone.appointments.exists()


def test_an_account_with_no_containers_gets_a_readable_failure(
    db: Any, sim: SimControl, task_queue: TaskQueue
) -> None:
    account = make_account("gus", emodal_username="gus+c0")
    query = run(account, task_queue, kind="containers")
    assert query.status == Query.Status.FAILED
    assert query.error == (
        "E-Modal gave no containers sheet: Download failed: No container data extracted"
    )
    assert len(sim.calls("/get_containers")) == 1


def test_terminal_codes_seen_without_a_name_are_shown_to_staff(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    run(alice, task_queue, kind="containers")
    unnamed = list(Terminal.objects.unnamed().values_list("code", flat=True))
    assert unnamed
    admin = Client()
    admin.force_login(type(alice.user).objects.create_superuser("root", "root@example.com", "pw"))
    page = admin.get(reverse("admin:queries_app_terminal_changelist"), {"named": "no"})
    text = page.content.decode()
    assert "have no E-Modal name" in text or "has no E-Modal name" in text
    for code in unnamed:
        assert code in text


def test_no_two_calls_on_one_session_while_many_queries_of_one_account_run(
    alice: Account, sim: SimControl, task_queue: TaskQueue, settings: Any
) -> None:
    from ..threads import in_threads

    settings.QUERY_RETRY_BASE_SECONDS = 0
    rows = sim.containers(str(alice.emodal_username))["containers"]
    known = [r["Container #"] for r in rows if r["Trade Type"] != "N/A"][:6]
    queries = [
        start_query(account=alice, kind="booking_number", params={"container_id": n})[0]
        for n in known
    ]
    from queries_app.engine import run_queries

    in_threads(4, lambda i: run_queries(budget_seconds=5))
    for query in queries:
        query.refresh_from_db()
    assert sim.stats()["collisions"] == 0
    calls = [c for c in sim.calls() if c["endpoint"] == "/get_booking_number"]
    spans = sorted((c["start"], c["end"]) for c in calls)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(query.status == Query.Status.SUCCEEDED for query in queries)
