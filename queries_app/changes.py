"""Change detection: what changed for each container since the account's previous successful
query of the same kind — new, gone, or which fields changed (stored by field name, with the
words to show for them here)."""

from __future__ import annotations

from typing import Any

from django.db.models import Min

from .engine.steps import DONE, Outcome, StepContext
from .models import ContainerChange, Query

# The fields compared, and how a page names them.
CHANGE_LABELS = {
    "status": "status",
    "holds": "holds",
    "last_free_day": "last free day",
    "pregate_ticket": "pregate",
    "earliest_slot": "earliest slot",
}
# Compared on the container rows; the earliest slot comes from the checks.
ROW_FIELDS = ("status", "holds", "last_free_day", "pregate_ticket")


def change_label(name: str) -> str:
    return CHANGE_LABELS.get(name, name.replace("_", " "))


def snapshot(query: Query) -> dict[str, dict[str, Any]]:
    rows = {
        row["container_number"]: row
        for row in query.containers.values("container_number", *ROW_FIELDS)
    }
    slots = query.checks.values("container_number").annotate(earliest=Min("earliest_slot"))
    for item in slots:
        if item["container_number"] in rows:
            rows[item["container_number"]]["earliest_slot"] = item["earliest"]
    return rows


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def detect_changes(ctx: StepContext) -> Outcome:
    """What changed for each container since the account's previous successful query of the
    same kind (no upstream call)."""
    query = ctx.query
    previous = (
        Query.objects.filter(
            account=query.account,
            kind=query.kind,
            status=Query.Status.SUCCEEDED,
            created_at__lt=query.created_at,
        )
        .order_by("-created_at", "-id")
        .first()
    )
    found: list[ContainerChange] = []
    if previous is not None:
        now, before = snapshot(query), snapshot(previous)
        for number, row in now.items():
            old = before.get(number)
            if old is None:
                found.append(
                    ContainerChange(change=ContainerChange.Change.NEW, container_number=number)
                )
                continue
            diff = {
                name: [_jsonable(old.get(name)), _jsonable(row.get(name))]
                for name in CHANGE_LABELS
                if old.get(name) != row.get(name)
            }
            if diff:
                found.append(
                    ContainerChange(
                        change=ContainerChange.Change.CHANGED, container_number=number, fields=diff
                    )
                )
        found.extend(
            ContainerChange(change=ContainerChange.Change.GONE, container_number=number)
            for number in before.keys() - now.keys()
        )
    for change in found:
        change.query, change.previous_query = query, previous

    def write() -> None:
        ContainerChange.objects.filter(query=query).delete()
        ContainerChange.objects.bulk_create(found, batch_size=1000)

    return Outcome(DONE, write)
