"""Appointment slots are local times at the terminal: read in the terminal's zone, shown in it
(labelled) whatever zone the viewer chose, given by the API with the terminal's UTC offset and
as E-Modal wrote it; the viewer's zone is for the portal's own times."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from containers_app.local_times import earliest_slot_text
from containers_app.models import Container
from containers_app.verdict import Pickup
from portal.timezones import TIMEZONE_SESSION_KEY
from queries_app.kinds.answers import read_answer
from queries_app.models import AppointmentCheck, Query, Terminal
from queries_app.slots import available_slots
from sessions_app.models import Account

from ..api.conftest import api_client

pytestmark = pytest.mark.django_db

LONG_BEACH = ZoneInfo("America/Los_Angeles")
SLOT = datetime(2026, 12, 8, 7, 0, tzinfo=LONG_BEACH)  # 10:00 in New York
SLOT_TEXT = "12/08/2026 07:00 - 08:00"
SEEN = datetime(2026, 12, 7, 12, 0, tzinfo=ZoneInfo("UTC"))  # 07:00 in New York


@pytest.fixture
def container(alice: Account) -> Container:
    terminal, _ = Terminal.objects.update_or_create(
        code="LBCT", defaults={"name": "Long Beach Container Terminal"}
    )
    assert terminal.time_zone == "America/Los_Angeles"  # Pacific by default
    return Container.objects.create(
        account=alice,
        container_number="MSCU1234567",
        trade_type="IMPORT",
        status="IN YARD",
        holds=False,
        pickup=Pickup.READY,
        terminal=terminal,
        terminal_code="LBCT",
        slot_count=2,
        earliest_slot=SLOT,
        earliest_slot_text=SLOT_TEXT,
        check_outcome="available",
        check_seen_at=SEEN,
        check_query=Query.objects.create(
            account=alice, kind="availability", status=Query.Status.SUCCEEDED
        ),
    )


def in_new_york(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[TIMEZONE_SESSION_KEY] = "America/New_York"
    session.save()
    return client


def test_a_viewer_in_new_york_sees_a_long_beach_slot_at_the_terminal_time(
    container: Container,
) -> None:
    client = in_new_york(container.account.user)
    board = client.get(reverse("containers:board")).content.decode()
    assert "12-08 07:00 PST" in board and "12-08 10:00" not in board
    assert "seen 12-07 07:00" in board  # the portal's own time: the viewer's zone
    assert f'title="{SLOT_TEXT}"' in board

    page = client.get(reverse("containers:detail", args=[container.container_number]))
    html = page.content.decode()
    assert "Tue 2026-12-08 07:00 PST" in html and "2026-12-08 10:00" not in html
    assert "local time (America/Los_Angeles)" in html
    assert "other times in America/New_York" in html


def test_the_api_gives_the_slot_with_the_terminal_offset_and_as_e_modal_wrote_it(
    container: Container,
) -> None:
    [row] = api_client(container.account.user).get("/api/v1/containers/").json()["results"]
    assert row["earliest_slot"] == "2026-12-08T07:00:00-08:00"
    assert row["earliest_slot_text"] == SLOT_TEXT
    assert row["terminal_time_zone"] == "America/Los_Angeles"


def test_a_terminal_in_another_zone_reads_its_slots_in_that_zone(alice: Account) -> None:
    Terminal.objects.update_or_create(
        code="NYCT",
        defaults={"name": "New York Container Terminal", "time_zone": "America/New_York"},
    )
    row = AppointmentCheck(note="")
    item = {"container_type": "import", "terminal_code": "NYCT"}
    read_answer(row, item, {"available_times": ["12/08/2026 09:00 - 10:00", SLOT_TEXT]})
    assert row.earliest_slot == datetime(2026, 12, 8, 7, 0, tzinfo=ZoneInfo("America/New_York"))
    assert row.earliest_slot.utcoffset().total_seconds() == -5 * 3600
    # Without a zone: the portal's (Pacific).
    _, slots, _ = available_slots([SLOT_TEXT])
    assert slots[0][0] == SLOT


def test_the_earliest_slot_text_is_the_earliest_time_not_the_first_listed() -> None:
    texts = ["12/09/2026 06:00 - 07:00", SLOT_TEXT, "not a slot"]
    assert earliest_slot_text(texts) == SLOT_TEXT
    assert earliest_slot_text(["not a slot"]) == ""


def test_a_terminal_time_zone_must_be_a_zone(staff: Any) -> None:
    terminal, _ = Terminal.objects.update_or_create(code="LBCT", defaults={"name": "LBCT"})
    client = Client()
    client.force_login(staff)
    url = reverse("admin:queries_app_terminal_change", args=[terminal.pk])
    response = client.post(
        url, {"code": "LBCT", "name": "LBCT", "time_zone": "Mars/Olympus", "active": "on"}
    )
    assert response.status_code == 200
    assert "Not a time zone name" in response.content.decode()
    terminal.refresh_from_db()
    assert terminal.time_zone == "America/Los_Angeles"
