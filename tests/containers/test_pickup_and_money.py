"""Whether a container still needs a pickup (one rule, on the real sheets' statuses), urgency and
counts only where it does, and what it costs by its terminal's tariff — on the board, in the
API and in the exports."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from containers_app import money
from containers_app.models import Container, Tariff
from containers_app.selectors import board_summary
from containers_app.verdict import NEEDS_PICKUP, Pickup, left_terminal, pickup_verdict
from emodal_sim import data as simdata
from queries_app.models import AppointmentCheck, Terminal
from sessions_app.models import Account

from ..api.conftest import api_client

pytestmark = pytest.mark.django_db

BOARD = reverse("containers:board")

# Every (Trade Type, Status, Holds) the customer's real containers sheets hold (two accounts'
# sheets, 819 rows), with the verdict each must get.
REAL_SHEET_CASES = [
    ("EXPORT", "GATE IN", "NO", Pickup.EXPORT),
    ("EXPORT", "IN YARD", "NO", Pickup.EXPORT),
    ("EXPORT", "ON VESSEL", "NO", Pickup.EXPORT),
    ("IMPORT", "GATE IN", "NO", Pickup.PICKED_UP),  # the empty came back
    ("IMPORT", "GATE OUT", "NO", Pickup.PICKED_UP),
    ("IMPORT", "GATE OUT", "YES", Pickup.PICKED_UP),  # a hold on a container gone out
    ("IMPORT", "IN YARD", "NO", Pickup.READY),
    ("IMPORT", "IN YARD", "YES", Pickup.ON_HOLD),
    ("IMPORT", "ON VESSEL", "NO", Pickup.NOT_ARRIVED),
    ("IMPORT", "ON VESSEL", "YES", Pickup.NOT_ARRIVED),
    ("N/A", "N/A", "N/A", Pickup.UNKNOWN),  # a container E-Modal knows nothing about
]


def yes_no(cell: str) -> bool | None:
    return {"YES": True, "NO": False}.get(cell)


def na(cell: str) -> str:
    return "" if cell == "N/A" else cell


@pytest.mark.parametrize(("trade", "status", "holds", "expected"), REAL_SHEET_CASES)
def test_every_status_of_the_real_sheets_has_its_verdict(
    trade: str, status: str, holds: str, expected: Pickup
) -> None:
    verdict = pickup_verdict(trade_type=na(trade), status=na(status), holds=yes_no(holds))
    assert verdict.pickup == expected
    assert verdict.reason


def test_every_status_the_simulator_serves_is_known() -> None:
    for status in {*simdata.IMPORT_STATUS.values()}:
        for holds in (True, False):
            got = pickup_verdict(trade_type="IMPORT", status=na(status), holds=holds)
            assert got.pickup != Pickup.UNKNOWN, status
    for status in {*simdata.EXPORT_STATUS.values()}:
        assert pickup_verdict(trade_type="EXPORT", status=na(status), holds=False).pickup == (
            Pickup.EXPORT
        )


def test_a_status_the_rule_does_not_know_is_unknown_and_says_which() -> None:
    verdict = pickup_verdict(trade_type="IMPORT", status="DISCHARGED", holds=False)
    assert verdict.pickup == Pickup.UNKNOWN and "DISCHARGED" in verdict.reason
    # In the yard with the holds cell empty: neither ready nor on hold is guessed.
    assert pickup_verdict(trade_type="IMPORT", status="IN YARD", holds=None).pickup == "unknown"
    assert pickup_verdict(trade_type="DOMESTIC", status="IN YARD", holds=False).pickup == "unknown"


def test_a_timeline_showing_it_out_of_the_terminal_wins_over_a_lagging_sheet() -> None:
    out = [
        {"milestone": "Empty Received", "date": "N/A", "status": "pending"},
        {"milestone": "Departed Terminal", "date": "10/07/2025 09:12", "status": "completed"},
        {"milestone": "Discharged", "date": "10/01/2025 03:00", "status": "completed"},
    ]
    waiting = [
        {"milestone": "Departed  terminal:", "date": "N/A", "status": "pending"},
        {"milestone": "Ready for pick up", "date": "10/02/2025 08:00", "status": "completed"},
    ]
    assert left_terminal(out) and not left_terminal(waiting) and not left_terminal(None)
    verdict = pickup_verdict(trade_type="IMPORT", status="IN YARD", holds=False, left=True)
    assert verdict.pickup == Pickup.PICKED_UP


# -- tariffs ----------------------------------------------------------------------------------

TODAY = date(2026, 3, 10)


def rates(effective_from: date, tiers: list[tuple[int, str]], free_days: int = 0) -> money.Rates:
    return money.Rates(effective_from, free_days, tuple((d, Decimal(r)) for d, r in tiers))


def test_charges_climb_through_the_tiers() -> None:
    tariff = [rates(date(2026, 1, 1), [(1, "100.00"), (5, "200.00")])]
    # Six days past the last free day: four at 100, two at 200; a seventh day costs 200.
    owed = money.charges(last_free_day=TODAY - timedelta(days=6), today=TODAY, tariffs=tariff)
    assert owed == money.Charges(Decimal("800.00"), Decimal("200.00"), 6)
    # Due today: nothing yet, tomorrow is the first charged day.
    owed = money.charges(last_free_day=TODAY, today=TODAY, tariffs=tariff)
    assert owed == money.Charges(Decimal("0.00"), Decimal("100.00"), 0)
    # Due in three days: nothing now, nothing tomorrow.
    owed = money.charges(last_free_day=TODAY + timedelta(days=3), today=TODAY, tariffs=tariff)
    assert owed == money.Charges(Decimal("0.00"), Decimal("0.00"), 0)


def test_free_days_after_the_last_free_day_are_not_charged() -> None:
    tariff = [rates(date(2026, 1, 1), [(1, "75.50")], free_days=2)]
    owed = money.charges(last_free_day=TODAY - timedelta(days=3), today=TODAY, tariffs=tariff)
    assert owed == money.Charges(Decimal("75.50"), Decimal("75.50"), 1)


def test_a_new_tariff_applies_from_its_date_and_the_days_before_keep_the_old_rates() -> None:
    old = rates(date(2026, 1, 1), [(1, "100.00")])
    new = rates(TODAY - timedelta(days=1), [(1, "150.00"), (3, "300.00")])
    # Four charged days: two under the old tariff (100 each), then day 3 and 4 under the new
    # one, whose tiers count from the same last free day (300 each).
    owed = money.charges(last_free_day=TODAY - timedelta(days=4), today=TODAY, tariffs=[old, new])
    assert owed == money.Charges(Decimal("800.00"), Decimal("300.00"), 4)


def test_days_no_tariff_covers_give_no_amount_rather_than_a_wrong_one() -> None:
    later = [rates(TODAY - timedelta(days=1), [(1, "100.00")])]
    owed = money.charges(last_free_day=TODAY - timedelta(days=5), today=TODAY, tariffs=later)
    assert owed is None


def tti_tariff(today: date, *tiers: tuple[int, str]) -> Terminal:
    terminal, _ = Terminal.objects.get_or_create(code="TTI", defaults={"name": "Total Terminals"})
    tariff = Tariff.objects.create(terminal=terminal, effective_from=today - timedelta(days=365))
    for from_day, rate in tiers:
        tariff.tiers.create(from_day=from_day, daily_rate=Decimal(rate))
    return terminal


# -- the board, its counts and its money ------------------------------------------------------


def board_of(alice: Account, today: date) -> dict[str, Container]:
    """One account's board: every verdict, some overdue, some due soon, two terminals (TTI
    with a tariff, ITS without)."""
    tti = tti_tariff(today, (1, "100.00"), (4, "250.00"))
    its, _ = Terminal.objects.get_or_create(code="ITS", defaults={"name": "ITS Long Beach"})
    rows = {}
    for number, pickup, days, terminal in (
        ("MSCU0000001", "ready", -5, tti),  # 3 × 100 + 2 × 250 = 800 so far, +250 a day
        ("MSCU0000002", "on_hold", -1, tti),  # 100 so far, +100 a day
        ("MSCU0000003", "ready", 0, tti),  # nothing yet, +100 tomorrow
        ("MSCU0000004", "ready", 2, its),
        ("MSCU0000005", "ready", -2, its),  # overdue at a terminal with no tariff
        ("MSCU0000006", "picked_up", -30, tti),
        ("MSCU0000007", "export", -3, tti),
        ("MSCU0000008", "not_arrived", 1, tti),
        ("MSCU0000009", "unknown", 0, tti),
        ("MSCU0000010", "ready", 9, tti),
    ):
        rows[number] = Container.objects.create(
            account=alice,
            container_number=number,
            pickup=pickup,
            last_free_day=today + timedelta(days=days),
            terminal=terminal,
            terminal_code=terminal.code,
            trade_type="EXPORT" if pickup == "export" else "IMPORT",
        )
    return rows


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def numbers_in(html: str) -> list[str]:
    body = html.split('id="board-table"', 1)[1].split("</tbody>", 1)[0]
    return [
        chunk.split(">", 1)[1].split("<", 1)[0]
        for chunk in body.split('<th scope="row"><a href="')[1:]
    ]


def test_counts_and_red_rows_are_only_for_containers_still_to_pull(alice: Account) -> None:
    today = timezone.localdate()
    board_of(alice, today)
    summary = board_summary(Container.objects.filter(account=alice), today=today)
    assert summary["needs"] == 6
    assert (summary["overdue"], summary["due_today"], summary["due_soon"]) == (3, 1, 1)
    assert summary["pickup_unknown"] == 1

    client = logged_in(alice.user)
    page = client.get(BOARD).content.decode()
    # It opens on what needs a pickup, most urgent first.
    assert numbers_in(page) == [
        "MSCU0000001",
        "MSCU0000005",
        "MSCU0000002",
        "MSCU0000003",
        "MSCU0000004",
        "MSCU0000010",
    ]
    assert 'id="quick-overdue">Overdue <b>3</b>' in page
    everything = client.get(BOARD, {"pickup": ""}).content.decode()
    cells = everything.split("<tr")[2:]
    rows = dict(zip(numbers_in(everything), cells, strict=True))
    assert len(rows) == 10
    for calm in ("MSCU0000006", "MSCU0000007", "MSCU0000008", "MSCU0000009"):
        assert "row-overdue" not in rows[calm] and "due-" not in rows[calm], calm
    assert 'class="row-overdue"' in rows["MSCU0000001"]
    assert "Picked up" in rows["MSCU0000006"] and "Not known" in rows["MSCU0000009"]

    # The quick filters do not overlap, and together they are every due container to pull.
    chips: dict[str, list[str]] = {}
    for due in ("overdue", "today", "soon"):
        chips[due] = numbers_in(client.get(BOARD, {"due": due}).content.decode())
    assert chips == {
        "overdue": ["MSCU0000001", "MSCU0000005", "MSCU0000002"],
        "today": ["MSCU0000003"],
        "soon": ["MSCU0000004"],
    }


def test_the_board_totals_and_sorts_by_money_and_says_no_tariff(alice: Account) -> None:
    today = timezone.localdate()
    board_of(alice, today)
    client = logged_in(alice.user)
    page = client.get(BOARD).content.decode()
    # 800 + 100 so far; another day: 250 + 100 + 100.
    assert "Money at risk: <b>$900.00</b> so far, <b>+$450.00</b> for another day" in page
    assert "1 overdue or due today at a terminal with no tariff" in page
    by_money = client.get(BOARD, {"sort": "money"}).content.decode()
    assert numbers_in(by_money)[:3] == ["MSCU0000001", "MSCU0000002", "MSCU0000003"]
    rows = dict(zip(numbers_in(by_money), by_money.split("<tr")[2:], strict=False))
    assert "$800.00" in rows["MSCU0000001"] and "+$250.00/day" in rows["MSCU0000001"]
    assert "no tariff" in rows["MSCU0000005"]

    detail = client.get(reverse("containers:detail", args=["MSCU0000001"])).content.decode()
    assert "Ready to pick up" in detail and "$800.00 so far, +$250.00 for another day" in detail
    calm = client.get(reverse("containers:detail", args=["MSCU0000006"])).content.decode()
    assert "Picked up" in calm and 'id="state-charges"' not in calm
    # Dispatchers read words; the rule's reason (sheet values) is for staff.
    assert "(status" not in detail and "(trade type" not in detail


def test_the_api_carries_the_verdict_and_the_money_and_filters_by_them(alice: Account) -> None:
    today = timezone.localdate()
    board_of(alice, today)
    client = api_client(alice.user)
    rows = {r["container_number"]: r for r in client.get("/api/v1/containers/").json()["results"]}
    assert len(rows) == 10
    assert rows["MSCU0000001"]["pickup"] == "ready"
    assert rows["MSCU0000001"]["charges_to_date"] == "800.00"
    assert rows["MSCU0000001"]["charge_per_day"] == "250.00"
    assert rows["MSCU0000005"]["charges_to_date"] is None  # no tariff at ITS
    assert rows["MSCU0000006"]["charges_to_date"] is None  # nothing to pull
    assert rows["MSCU0000010"]["charges_to_date"] == "0.00"

    def numbers(**params: Any) -> list[str]:
        body = client.get("/api/v1/containers/", params).json()
        return sorted(r["container_number"] for r in body["results"])

    assert numbers(pickup="on_hold") == ["MSCU0000002"]
    assert numbers(pickup="unknown") == ["MSCU0000009"]
    assert len(numbers(pickup="needs")) == 6
    # Due within 2 days counts only containers still to pull (overdue included).
    assert numbers(due_within=2) == [f"MSCU000000{n}" for n in (1, 2, 3, 4, 5)]
    assert client.get("/api/v1/containers/", {"sort": "money"}).json()["results"][0][
        "container_number"
    ] == ("MSCU0000001")
    assert client.get("/api/v1/containers/", {"pickup": "maybe"}).status_code == 400


def test_the_csv_writes_numbers_as_numbers_and_defuses_only_text(alice: Account) -> None:
    today = timezone.localdate()
    rows = board_of(alice, today)
    Container.objects.filter(pk=rows["MSCU0000001"].pk).update(status="=HYPERLINK(1)")
    response = logged_in(alice.user).get(reverse("containers:export_csv"))
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    first = next(r for r in table if r["Container"] == "MSCU0000001")
    assert first["Days left"] == "-5"  # a number a spreadsheet sorts, not the text '-5
    assert first["Charges to date"] == "800.00" and first["Another day costs"] == "250.00"
    assert first["Status"] == "'=HYPERLINK(1)"
    assert first["Pickup"] == "Ready to pick up"
    no_tariff = next(r for r in table if r["Container"] == "MSCU0000005")
    assert no_tariff["Charges to date"] == ""


def test_the_xlsx_has_a_frozen_header_a_filter_widths_and_its_zone(alice: Account) -> None:
    board_of(alice, timezone.localdate())
    response = logged_in(alice.user).get(reverse("containers:export_xlsx"))
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet.freeze_panes == "A2"
    header = [cell.value for cell in sheet[1]]
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(header)).column_letter}7"
    assert all((sheet.column_dimensions[c.column_letter].width or 0) >= 12 for c in sheet[1])
    zone = str(timezone.get_current_timezone())
    assert f"Seen at ({zone})" in header and "Last free day" in header
    days = header.index("Days left")
    assert sheet.cell(2, days + 1).value == -5
    charges = header.index("Charges to date")
    assert sheet.cell(2, charges + 1).value == Decimal("800.00") or (
        sheet.cell(2, charges + 1).value == 800
    )


def test_every_needs_pickup_verdict_is_a_pickup_word() -> None:
    assert set(NEEDS_PICKUP) == {"ready", "on_hold"}
    assert set(Pickup.values) == {
        "ready",
        "on_hold",
        "not_arrived",
        "picked_up",
        "export",
        "unknown",
    }


def test_an_export_check_says_what_it_saw() -> None:
    found = AppointmentCheck(trade_type="EXPORT", calendar_found=True, outcome="available")
    missed = AppointmentCheck(trade_type="EXPORT", calendar_found=False, outcome="unknown")
    slots = AppointmentCheck(trade_type="IMPORT", slot_count=2, outcome="available")
    assert found.outcome_text() == "Calendar found"
    assert missed.outcome_text() == "Calendar not found (unknown)"
    assert slots.outcome_text() == "Slots available"


def test_containers_the_rule_does_not_know_are_counted_for_staff(
    alice: Account, django_user_model: Any
) -> None:
    board_of(alice, timezone.localdate())
    staff = django_user_model.objects.create_user("vera", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_container"))
    counted = 'id="pickup-unknown">1 with a status the portal does not know'
    assert counted in logged_in(staff).get(BOARD).content.decode()
    assert (
        "pickup-unknown"
        not in logged_in(alice.user).get(BOARD).content.decode().split('id="board-table"')[0]
    )
    assert numbers_in(logged_in(staff).get(BOARD, {"pickup": "unknown"}).content.decode()) == [
        "MSCU0000009"
    ]
