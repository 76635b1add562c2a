"""A run's progress as people read it: every step counts (the sheet, the details, each check,
the appointments), not only the checks, with the time left estimated from the contract's
timings (`Query.work_left`, each kind's `work_left`)."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Query
from .registry import UnknownKind, get_kind

# What the per-item steps count, in words ("3 of 8 containers checked").
ITEMS_WORDS = "containers checked"


@dataclass(frozen=True)
class RunProgress:
    done: int
    # 0 while not even the steps are known (an unknown kind).
    total: int
    # The per-item step's figures (checks), when the kind has one and knows how many.
    items_done: int
    items_total: int
    seconds_left: int | None

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def left_text(self) -> str:
        if self.seconds_left is None or self.seconds_left <= 0:
            return ""
        minutes = -(-self.seconds_left // 60)
        if minutes <= 1:
            return "about a minute left"
        if minutes < 90:
            return f"about {minutes} min left"
        return f"about {round(minutes / 60, 1):g} h left"

    @property
    def text(self) -> str:
        parts = [f"{self.done} of {self.total} steps"] if self.total else []
        if self.items_total:
            parts.append(f"{self.items_done} of {self.items_total} {ITEMS_WORDS}")
        if self.left_text:
            parts.append(self.left_text)
        return " · ".join(parts)


def run_progress(query: Query) -> RunProgress:
    """Steps done of the run's steps: each step one, a per-item step one per item (its count
    is known once the sheet is read: until then the total grows as the run learns it)."""
    try:
        kind = get_kind(query.kind)
    except UnknownKind:
        return RunProgress(query.progress_done, query.progress_total, 0, 0, None)
    names = list(kind.steps)
    finished = query.status == Query.Status.SUCCEEDED
    seconds_left = None
    if query.is_live:
        seconds_left = query.work_left or (kind.estimate(query) if query.step else None)
    if query.progress_total > 1 and not any(kind.steps[name].per_item for name in names):
        # A kind that counts its own items in a step of its own: its figures as they are.
        done = query.progress_total if finished else query.progress_done
        return RunProgress(done, query.progress_total, 0, 0, seconds_left)
    current = names.index(query.step) if query.step in names else (len(names) if finished else 0)
    done = total = items_done = items_total = 0
    for index, name in enumerate(names):
        step = kind.steps[name]
        units = query.progress_total if step.per_item else 1
        total += units
        if step.per_item:
            items_total = query.progress_total
            items_done = query.progress_done if index <= current else 0
            items_done = items_total if index < current else items_done
        if index < current:
            done += units
        elif index == current and step.per_item:
            done += min(query.progress_done, units)
    if finished:
        done, items_done = total, items_total
    return RunProgress(done, total, items_done, items_total, seconds_left)
