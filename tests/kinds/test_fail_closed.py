"""Unknown is not an answer (docs/upstream-contract.md, "Other real behaviours"): a slot text the
portal cannot read is shown as unreadable and never counted, a calendar E-Modal did not find is
"unknown" rather than "no availability", a timeline label the portal does not know is kept and
counted for staff, and a pregate status not read is shown as unknown where the rule defaults
it. Against the simulator over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from queries_app.kinds.availability import PREGATE_UNKNOWN, plan_check
from queries_app.models import AppointmentCheck, ContainerInfo, Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..api.conftest import api_client
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)

UNREADABLE = "Tuesday 10/07/2025 9 to 10ish"
READABLE = "Wednesday 10/08/2025 13:00 - 14:00"


def first(sim: SimControl, account: Account, trade: str) -> tuple[str, dict[str, Any]]:
    served = sim.containers(account.emodal_username)
    for row in served["containers"]:
        number = row["Container #"]
        details = served["details"].get(number, {})
        if row["Trade Type"] == trade and (trade == "IMPORT" or details.get("booking_number")):
            return number, details
    raise AssertionError(f"no {trade} container served")


def run(account: Account, queue: TaskQueue, kind: str, **params: Any) -> Query:
    return run_through_retries(start_query(account=account, kind=kind, params=params)[0], queue)


def import_check(account: Account, sim: SimControl, queue: TaskQueue) -> Query:
    number, _ = first(sim, account, "IMPORT")
    return run(
        account,
        queue,
        "appointment_check",
        container_type="import",
        container_id=number,
        terminal="TTI",
        move_type="PICK FULL",
    )


def page(account: Account, query: Query) -> str:
    browser = Client()
    browser.force_login(account.user)
    return browser.get(reverse("queries:detail", args=[query.pk])).content.decode()


def api_checks(account: Account, query: Query) -> list[dict[str, Any]]:
    response = api_client(account.user).get(reverse("api:query-checks", args=[query.pk]))
    assert response.status_code == 200
    body = json.loads(response.content)
    return body["results"] if isinstance(body, dict) else body


def test_an_unreadable_slot_text_is_shown_as_such_and_never_counted(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    sim.answer("/check_appointments", {"available_times": [UNREADABLE]})
    query = import_check(alice, sim, task_queue)

    assert query.status == Query.Status.SUCCEEDED, query.error
    check = query.checks.get()
    # Not "slots available", not "no slots": unknown, with nothing counted.
    assert check.outcome == AppointmentCheck.Outcome.UNKNOWN
    assert (check.slot_count, check.earliest_slot, check.slot_texts) == (0, None, [])
    assert check.unreadable_times == [UNREADABLE]
    html = page(alice, query)
    assert UNREADABLE in html and "(unreadable: not counted)" in html
    assert "could not be read as a slot and is not counted" in html
    [served] = api_checks(alice, query)
    assert served["outcome"] == "unknown"
    assert (served["slot_count"], served["earliest_slot"]) == (0, None)
    assert served["unreadable_times"] == [UNREADABLE]


def test_an_unreadable_text_beside_real_slots_is_never_the_earliest(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    # The unreadable text comes first and reads like an earlier day: it must not count.
    sim.answer("/check_appointments", {"available_times": [UNREADABLE, READABLE]})
    check = import_check(alice, sim, task_queue).checks.get()

    assert check.outcome == AppointmentCheck.Outcome.AVAILABLE
    assert check.slot_count == 1
    assert check.slot_texts == [READABLE]
    assert check.earliest_slot is not None and check.earliest_slot.day == 8


def test_a_calendar_not_found_is_unknown_not_no_availability(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    number, details = first(sim, alice, "EXPORT")
    sim.glitch("/check_appointments", "calendar_missed")
    query = run(
        alice,
        task_queue,
        "appointment_check",
        container_type="export",
        booking_number=details["booking_number"],
        terminal="TTI",
        move_type="DROP FULL",
    )

    assert query.status == Query.Status.SUCCEEDED, query.error
    answered = sim.calls("/check_appointments")[-1]
    assert answered["status"] == 200
    check = query.checks.get()
    assert check.calendar_found is False
    assert check.outcome == AppointmentCheck.Outcome.UNKNOWN
    assert "availability unknown" in check.note
    assert "Not found (unknown)" in page(alice, query)
    assert api_checks(alice, query)[0]["outcome"] == "unknown"


def test_an_unknown_milestone_label_is_kept_flagged_and_counted_for_staff(
    alice: Account, sim: SimControl, task_queue: TaskQueue, staff: Any
) -> None:
    number, _ = first(sim, alice, "IMPORT")
    timeline = [
        {"milestone": "Customs Hold Released", "date": "10/07/2025 09:00", "status": "completed"},
        {"milestone": "Container Manifested", "date": "10/01/2025 08:00", "status": "completed"},
    ]
    sim.answer("/get_container_timeline", {"timeline": timeline, "passed_pregate": False})
    query = run(alice, task_queue, "timeline", container_id=number)

    assert query.status == Query.Status.SUCCEEDED, query.error
    info = ContainerInfo.objects.get(query=query)
    assert [m["milestone"] for m in info.milestones] == [
        "Customs Hold Released",
        "Container Manifested",
    ]
    assert info.unknown_milestones == ["Customs Hold Released"]
    assert info.manifested_at is not None  # the known one is still read
    assert "Not known to the portal: “Customs Hold Released”" in page(alice, query)

    browser = Client()
    browser.force_login(staff)
    ops = browser.get(reverse("admin:ops_app_operations_changelist")).content.decode()
    assert '<strong id="unknown-milestones">1</strong> container with' in ops
    assert "“Customs Hold Released”: 1" in ops


def test_an_unknown_pregate_status_is_shown_unknown_where_the_rule_defaults_it(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    number, _ = first(sim, alice, "IMPORT")
    sim.answer("/get_container_timeline", {"passed_pregate": None})
    query = run(alice, task_queue, "timeline", container_id=number)
    info = ContainerInfo.objects.get(query=query)
    assert info.passed_pregate is None
    assert "<td>Unknown</td>" in page(alice, query)

    candidate = {
        "container": number,
        "trade_type": "IMPORT",
        "origin": "TTI",
        "destination": "",
        "current_location": "ITS",
    }
    planned = plan_check(candidate, info)
    # The operators' rule still picks the move; the result says the status was not known.
    assert (planned["move_type"], planned["terminal_code"]) == ("PICK FULL", "ITS")
    assert planned["note"] == PREGATE_UNKNOWN
    info.passed_pregate = False
    assert plan_check(candidate, info)["note"] == ""


def test_a_run_whose_bulk_answer_does_not_say_pregate_checks_by_the_rule_and_says_so(
    alice: Account, sim: SimControl, task_queue: TaskQueue, staff: Any
) -> None:
    served = sim.containers(alice.emodal_username)
    candidates = [
        row
        for row in served["containers"]
        if row["Holds"] == "NO" and row["Pregate Ticket#"].startswith("N/A")
    ]
    imports = [r["Container #"] for r in candidates if r["Trade Type"] == "IMPORT"]
    exports = [r["Container #"] for r in candidates if r["Trade Type"] == "EXPORT"]
    assert imports
    odd = {"milestone": "Customs Exam Ordered", "date": "N/A", "status": "pending"}
    sim.answer(
        "/get_info_bulk",
        {
            "results": {
                "import_results": [
                    {
                        "container_id": number,
                        "success": True,
                        "pregate_status": None,
                        "pregate_details": None,
                        "timeline": [odd],
                        "milestone_count": 1,
                    }
                    for number in imports
                ],
                "export_results": [
                    {
                        "container_id": number,
                        "success": True,
                        "booking_number": served["details"][number]["booking_number"],
                    }
                    for number in exports
                ],
            }
        },
    )
    query = run_through_retries(start_query(account=alice, kind="availability")[0], task_queue)

    assert query.status == Query.Status.SUCCEEDED, query.error
    checks = {c.container_number: c for c in query.checks.all()}
    for number in imports:
        # Checked as operators would (a pick-up), and said to rest on an unknown status.
        assert checks[number].move_type == "PICK FULL"
        assert PREGATE_UNKNOWN in checks[number].note
    for number in exports:
        assert PREGATE_UNKNOWN not in checks[number].note
    infos = ContainerInfo.objects.filter(query=query, trade_type="IMPORT")
    assert {i.container_number: i.unknown_milestones for i in infos} == {
        number: ["Customs Exam Ordered"] for number in imports
    }
    html = page(alice, query)
    assert html.count("<td>Unknown</td>") >= len(imports)

    browser = Client()
    browser.force_login(staff)
    ops = browser.get(reverse("admin:ops_app_operations_changelist")).content.decode()
    assert f'<strong id="unknown-milestones">{len(imports)}</strong>' in ops
    assert f"“Customs Exam Ordered”: {len(imports)}" in ops


def test_a_run_whose_checks_answer_unknown_exports_unknown_and_lists_none_as_without_slot(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    sim.answer(
        "/check_appointments", {"available_times": [UNREADABLE], "calendar_found": False}, count=99
    )
    query = run_through_retries(start_query(account=alice, kind="availability")[0], task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    unknown = set(
        query.checks.filter(outcome=AppointmentCheck.Outcome.UNKNOWN).values_list(
            "container_number", flat=True
        )
    )
    assert unknown
    assert not query.checks.filter(outcome=AppointmentCheck.Outcome.NONE).exists()

    browser = Client()
    browser.force_login(alice.user)
    csv = browser.get(reverse("queries:export_containers_csv", args=[query.pk]))
    lines = b"".join(csv.streaming_content).decode().splitlines()
    header = lines[0].split(",")
    slots = header.index("Slots")
    by_number = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    assert {number: by_number[number][slots] for number in unknown} == dict.fromkeys(
        unknown, "unknown"
    )
    # "Without a slot" lists only what a check said has none: an unknown answer is not that.
    url = reverse("queries:export_containers_csv", args=[query.pk])
    listed = b"".join(browser.get(url, {"slot": "no"}).streaming_content).decode()
    assert not any(number in listed for number in unknown)
    listed = b"".join(browser.get(url, {"slot": "yes"}).streaming_content).decode()
    assert not any(number in listed for number in unknown)
