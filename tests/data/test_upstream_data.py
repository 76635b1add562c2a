"""Upstream data read by the real conventions (`queries_app.parsing`): `N/A` and masked cells,
LFD/GTD ranges, the customer's availability rule, slot texts, milestone names, sheet headers."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from queries_app import parsing
from queries_app.slots import available_slots, parse_slot

ZONE = ZoneInfo("America/Los_Angeles")


def local(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=ZONE)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("N/A", ""),
        ("n/a", ""),
        ("N/A *******", ""),
        ("N/A*", ""),
        ("  N/A  ", ""),
        ("", ""),
        (None, ""),
        ("**************", "**************"),  # a value exists, hidden
        ("TTI-1006-79588 378130", "TTI-1006-79588 378130"),
        (" GATE OUT ", "GATE OUT"),
        ("NAPA", "NAPA"),  # a word that starts like N/A is a value
    ],
)
def test_a_cell_is_no_value_when_written_n_a_masked_or_not(text: str | None, value: str) -> None:
    assert parsing.cell(text) == value


@pytest.mark.parametrize(
    ("text", "dates"),
    [
        ("10/09/2025 - 10/09/2025", (dt.date(2025, 10, 9), dt.date(2025, 10, 9))),
        ("09/26/2025 - 03/03/2026", (dt.date(2025, 9, 26), dt.date(2026, 3, 3))),
        ("09/26/2025-03/03/2026", (dt.date(2025, 9, 26), dt.date(2026, 3, 3))),
        ("10/09/2025", (dt.date(2025, 10, 9), None)),
        ("N/A", (None, None)),
        ("N/A ****", (None, None)),
        ("13/45/2025 - 01/01/2026", (None, dt.date(2026, 1, 1))),
        ("soon", (None, None)),
    ],
)
def test_the_lfd_gtd_range_gives_the_last_free_day_and_the_good_through_date(
    text: str, dates: tuple[dt.date | None, dt.date | None]
) -> None:
    assert parsing.parse_date_range(text) == dates


@pytest.mark.parametrize(
    ("holds", "ticket", "selected"),
    [
        ("NO", "N/A", True),
        ("NO", "N/A *******", True),
        ("NO", "**************", False),  # a hidden ticket is a ticket
        ("NO", "TTI-1006-79588 378130", False),
        ("YES", "N/A", False),
        ("N/A", "N/A", False),  # a container E-Modal knows nothing about
    ],
)
def test_the_availability_rule_is_holds_no_and_no_pregate_ticket(
    holds: str, ticket: str, selected: bool
) -> None:
    fields = parsing.container_fields({"Holds": holds, "Pregate Ticket#": ticket})
    assert parsing.is_availability_candidate(fields) is selected


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        (
            "Tuesday 10/07/2025 09:00 - 10:00",
            (local(2025, 10, 7, 9, 0), local(2025, 10, 7, 10, 0)),
        ),
        (
            "Monday 10/06/2025 23:00 - 02:00",
            (local(2025, 10, 6, 23, 0), local(2025, 10, 7, 2, 0)),
        ),
        (
            "10/10/2025 08:00 AM - 09:00 AM",
            (local(2025, 10, 10, 8, 0), local(2025, 10, 10, 9, 0)),
        ),
        (
            "10/10/2025 12:00 PM - 01:00 PM",
            (local(2025, 10, 10, 12, 0), local(2025, 10, 10, 13, 0)),
        ),
        (
            "10/10/2025 11:00 PM - 12:30 AM",
            (local(2025, 10, 10, 23, 0), local(2025, 10, 11, 0, 30)),
        ),
        (
            "10/10/2025 12:00 AM - 01:00 AM",
            (local(2025, 10, 10, 0, 0), local(2025, 10, 10, 1, 0)),
        ),
        ("No Appointments Available!", None),
        ("Tuesday 13/45/2025 09:00 - 10:00", None),
        ("10/10/2025 25:00 - 26:00", None),
    ],
)
def test_slot_texts_in_every_form_give_their_start_and_end(
    text: str, slot: tuple[dt.datetime, dt.datetime] | None
) -> None:
    with timezone.override(ZONE):
        assert parse_slot(text) == slot


@pytest.mark.parametrize(
    "placeholder",
    ["No Appointments Available!", "No Appointments Available", " no appointments available! "],
)
def test_the_no_slots_placeholder_is_no_slot(placeholder: str) -> None:
    assert available_slots([placeholder]) == ([], [], [])


def test_real_slots_are_kept_in_time_order_and_unreadable_ones_apart() -> None:
    texts, slots, unreadable = available_slots(
        [
            "Wednesday 10/08/2025 13:00 - 14:00",
            "No Appointments Available",
            "Tuesday 10/07/2025 09:00 - 10:00",
            "later today",
        ]
    )
    assert texts == ["Wednesday 10/08/2025 13:00 - 14:00", "Tuesday 10/07/2025 09:00 - 10:00"]
    # Not a slot: kept to be shown, never counted (it may be an error the page displayed).
    assert unreadable == ["later today"]
    assert [start.date() for start, _ in slots] == [dt.date(2025, 10, 7), dt.date(2025, 10, 8)]


def test_milestones_are_matched_by_their_name_variants() -> None:
    timeline = [
        {"milestone": "Empty Received", "date": "N/A", "status": "pending"},
        {"milestone": "Departed  Terminal", "date": "10/05/2025 14:20", "status": "completed"},
        {"milestone": "Pregate", "date": "10/05/2025 13:00", "status": "completed"},
        {"milestone": "Container Manifested", "date": "09/30/2025 08:05", "status": "completed"},
    ]
    with timezone.override(ZONE):
        dates = parsing.milestone_dates(timeline)
    zone = timezone.get_default_timezone()
    assert dates == {
        "manifested_at": dt.datetime(2025, 9, 30, 8, 5, tzinfo=zone),
        "departed_terminal_at": dt.datetime(2025, 10, 5, 14, 20, tzinfo=zone),
        "empty_received_at": None,
    }
    older = parsing.milestone_dates([{"milestone": "Manifested", "date": "09/30/2025 08:05"}])
    assert older["manifested_at"] == dt.datetime(2025, 9, 30, 8, 5, tzinfo=zone)


@pytest.mark.parametrize(
    ("header", "appointments"),
    [
        (["Appointment #", "Container #", "Terminal", "Time Slot"], True),
        (["Appointment Number", "Container", "Date"], True),
        (["Container #", "Trade Type", "Holds", "Pregate Ticket#", "LFD/GTD"], False),
        (["Container #", "Appointment #", "Pregate Ticket#"], False),
        ([], False),
    ],
)
def test_only_an_appointments_header_is_an_appointments_sheet(
    header: list[str], appointments: bool
) -> None:
    assert parsing.is_appointments_header(header) is appointments


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("MSCU1234567", True),
        ("MSCU١٢٣٤٥٦٧", False),  # Arabic-Indic digits
        ("MSCU１２３４５６７", False),  # full-width digits
        ("MSCU123456", False),
        ("MSCÜ1234567", False),
    ],
)
def test_container_numbers_are_ascii_letters_and_digits(number: str, valid: bool) -> None:
    assert parsing.is_container_number(number) is valid
