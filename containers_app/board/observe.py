"""What one run saw, as the board needs it: the whole containers sheet (the containers and
availability kinds), the details of bulk info, timelines and booking numbers, and the slot
checks. Read before the merge's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from queries_app.models import AppointmentCheck, Query, QueryFile

# Kinds whose results say something about the account's containers.
SHEET_KINDS = {"containers", "availability"}
BOARD_KINDS = SHEET_KINDS | {"bulk_info", "timeline", "booking_number", "appointment_check"}

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
    sheet = None
    sheet_seen_at = seen_at
    if query.kind in SHEET_KINDS:
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
    details = {
        info["container_number"]: info
        for info in query.infos.filter(success=True).values(
            "container_number", "passed_pregate", "booking_number", "milestones"
        )
    }
    checks = {
        check["container_number"]: check
        for check in query.checks.exclude(container_number="")
        .filter(outcome__in=INFORMATIVE_CHECKS)
        .values("container_number", "outcome", "slot_count", "earliest_slot", "slot_texts")
    }
    return Observed(sheet, sheet_seen_at, seen_at, details, checks)
