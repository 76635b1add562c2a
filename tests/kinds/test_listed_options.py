"""Names checked against what E-Modal's appointment page lists (docs/upstream-contract.md, "How
the appointment page picks values"): the options its `Option … not found` failures list are
kept, and a name that is only part of a listed option is warned of in the admin and never
sent — the page would silently check that other option and report it as the one asked."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from emodal_sim import DEFAULT_TERMINALS, DEFAULT_TRUCKING_COMPANIES
from queries_app.models import AppointmentCheck, Query, Terminal
from queries_app.services import start_query
from sessions_app.models import Account, ListedOption
from sessions_app.services import ambiguous_name, listed_options, record_listed_options

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)


def import_number(sim: SimControl, account: Account) -> str:
    rows = sim.containers(account.emodal_username)["containers"]
    return next(r["Container #"] for r in rows if r["Trade Type"] == "IMPORT")


def check(account: Account, queue: TaskQueue, number: str, terminal: str) -> Query:
    query, _ = start_query(
        account=account,
        kind="appointment_check",
        params={
            "container_type": "import",
            "container_id": number,
            "terminal": terminal,
            "move_type": "PICK FULL",
        },
    )
    return run_through_retries(query, queue)


def sent_terminals(sim: SimControl) -> list[str]:
    return [call["params"].get("terminal") for call in sim.calls("/check_appointments")]


def test_the_options_of_a_refused_terminal_are_kept_whole_even_with_commas_in_names(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    Terminal.objects.create(code="NOWHERE", name="Nowhere Terminal")
    query = check(alice, task_queue, import_number(sim, alice), "NOWHERE")

    assert query.status == Query.Status.FAILED
    assert "Option 'Nowhere Terminal' not found in Terminal" in query.error
    kept = set(ListedOption.objects.filter(label="Terminal").values_list("text", flat=True))
    # The page lists its first ten, joined with ", ": names holding ", " are kept whole.
    assert kept == set(DEFAULT_TERMINALS[:10])
    assert "Husky Terminal and Stevedoring, Inc." in kept
    assert "Everport Terminal Services Inc. - Tacoma, WA" in kept


def test_a_terminal_name_part_of_a_listed_option_is_not_sent_and_is_warned_of(
    alice: Account, sim: SimControl, task_queue: TaskQueue, staff: Any
) -> None:
    Terminal.objects.create(code="NOWHERE", name="Nowhere Terminal")
    number = import_number(sim, alice)
    check(alice, task_queue, number, "NOWHERE")  # E-Modal lists its terminals in the failure
    assert "ITS Long Beach" in ListedOption.objects.values_list("text", flat=True)
    Terminal.objects.filter(code="ITS").update(name="ITS")  # as staff might enter it
    calls = len(sim.calls("/check_appointments"))

    query = check(alice, task_queue, number, "ITS")

    # The page would have checked ITS Long Beach and reported it as "ITS": nothing was sent.
    assert len(sim.calls("/check_appointments")) == calls
    assert query.status == Query.Status.FAILED
    assert "“ITS”" in query.error and "“ITS Long Beach”" in query.error
    assert "to give the terminal its full name" in query.error
    assert "Admin ›" not in query.error

    browser = Client()
    browser.force_login(staff)
    listing = browser.get(reverse("admin:queries_app_terminal_changelist")).content.decode()
    assert "ITS (“ITS” would select “ITS Long Beach”)" in listing
    its = Terminal.objects.get(code="ITS")
    page = browser.get(reverse("admin:queries_app_terminal_change", args=[its.pk]))
    assert "is part of “ITS Long Beach”" in page.content.decode()

    # With the option's full text the check goes out, and at that terminal.
    Terminal.objects.filter(code="ITS").update(name="ITS Long Beach")
    query = check(alice, task_queue, number, "ITS")
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert sent_terminals(sim)[-1] == "ITS Long Beach"
    assert query.checks.get().outcome != AppointmentCheck.Outcome.NOT_SENT


def test_an_availability_run_does_not_send_an_ambiguous_trucking_company(
    db: Any, sim: SimControl, task_queue: TaskQueue, staff: Any
) -> None:
    account = make_account("erin", trucking_company="Nobody Hauling")
    query = check(account, task_queue, import_number(sim, account), "TTI")
    assert "not found in Trucking" in query.error
    assert set(
        ListedOption.objects.filter(account=account, label="Trucking").values_list(
            "text", flat=True
        )
    ) == set(DEFAULT_TRUCKING_COMPANIES)
    Account.objects.filter(pk=account.pk).update(trucking_company="K & R", appointment_error="")
    calls = len(sim.calls("/check_appointments"))

    run = run_through_retries(start_query(account=account, kind="availability")[0], task_queue)

    assert run.status == Query.Status.SUCCEEDED, run.error
    assert len(sim.calls("/check_appointments")) == calls
    checks = list(run.checks.all())
    assert checks and all(c.outcome == AppointmentCheck.Outcome.NOT_SENT for c in checks)
    reasons = {c.error for c in checks if "trucking company" in c.error}
    assert reasons == {
        "Not sent: the trucking company “K & R” is part of “K & R TRANSPORTATION LLC”, which "
        "E-Modal lists, so its page would pick that company instead. Ask your portal "
        "administrator to correct it."
    }
    browser = Client()
    browser.force_login(staff)
    page = browser.get(reverse("admin:sessions_app_account_change", args=[account.pk]))
    assert "is part of “K &amp; R TRANSPORTATION LLC”" in page.content.decode()


def test_a_name_exactly_listed_is_not_ambiguous_though_part_of_another(db: Any) -> None:
    # The page takes an exact match first: `OICT` is checked at OICT even beside `OICT West`.
    record_listed_options("Terminal", ["OICT", "OICT West", "ITS Long Beach"])
    assert ambiguous_name("Terminal", "OICT") is None
    assert ambiguous_name("Terminal", "ITS") == "ITS Long Beach"
    assert ambiguous_name("Terminal", "Terminal 18") is None  # not known either way
    # The page's own comparison: ` - ` and `-` are the same, spaces collapsed.
    record_listed_options("Terminal", ["SSA Terminal - PierA / LB"])
    assert ambiguous_name("Terminal", "SSA Terminal-PierA / LB") is None


def test_an_empty_options_list_keeps_nothing(db: Any) -> None:
    listed = listed_options(
        "Phase 1 failed - Terminal: Option 'X' not found in Terminal. Available options: "
    )
    assert listed is not None and listed.options == []
    assert (
        listed_options("Phase 1 failed - Trucking company: Dropdown 'Trucking' not found") is None
    )
