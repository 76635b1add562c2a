"""What one run saw, as the board needs it: the parts its kind feeds the board
(`QueryKind.feeds_board`): the whole containers sheet, the containers' details, the slot
checks. Read before the merge's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from queries_app.models import AppointmentCheck, Query, QueryFile
from queries_app.registry import Feed, board_feed

# The containers sheet's fields kept on the board.
SHEET_FIELDS = (
    "trade_type",
    "status",
    "holds",
    "last_free_day",
    "good_through",
    "pregate_ticket",
    "pregate_status",
    "gate_status",
    "origin",
    "destination",
    "current_location",
    "line",
    "size_type",
    "vessel_name",
    "voyage",
)
# Check outcomes that say something about slots (a failed or unsent check says nothing).
INFORMATIVE_CHECKS = (AppointmentCheck.Outcome.AVAILABLE, AppointmentCheck.Outcome.NONE)


@dataclass
class Observed:
    """What one run saw: the whole containers sheet (or None), details and slot checks."""

    sheet: dict[str, dict[str, Any]] | None
    sheet_seen_at: datetime
    seen_at: datetime
    details: Mapping[str, Mapping[str, Any]]
    checks: Mapping[str, Mapping[str, Any]]


def observe(query: Query) -> Observed:
    seen_at = query.finished_at or timezone.now()
    feed = board_feed(query.kind)
    sheet = None
    sheet_seen_at = seen_at
    if Feed.SHEET in feed:
        sheet = {
            row["container_number"]: row
            for row in query.containers.values("container_number", *SHEET_FIELDS)
        }
        # The sheet was read when its file was stored, maybe long before the run ended.
        stored = (
            QueryFile.objects.filter(query=query, kind=QueryFile.Kind.CONTAINERS_SHEET)
            .values_list("created_at", flat=True)
            .first()
        )
        sheet_seen_at = stored or seen_at
    details = (
        {
            info["container_number"]: info
            for info in query.infos.filter(success=True).values(
                "container_number", "passed_pregate", "booking_number", "milestones"
            )
        }
        if Feed.DETAILS in feed
        else {}
    )
    checks = (
        {
            check["container_number"]: check
            for check in query.checks.exclude(container_number="")
            .filter(outcome__in=INFORMATIVE_CHECKS)
            .values("container_number", "outcome", "slot_count", "earliest_slot", "slot_texts")
        }
        if Feed.CHECKS in feed
        else {}
    )
    return Observed(sheet, sheet_seen_at, seen_at, details, checks)
