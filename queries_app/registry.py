"""The registry of query kinds: what the engine, the model's choices, the start form, the
command and the pages ask about a kind. Each kind declares everything about itself in one
module of `queries_app/kinds/` (registered when the app is ready); adding a kind is adding a
module (see "Adding a query kind" in the README)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.steps import Outcome, StepContext
    from .kinds.params import KindParams
    from .models import Query


@dataclass(frozen=True)
class Step:
    """One step of a kind: at most one upstream operation."""

    run: Callable[[StepContext], Outcome]
    # What the page says while this step runs.
    label: str
    # Typical upstream seconds (the contract's timings): a default measure of work left.
    seconds: int = 0
    # What a failure of this step's item means once its tries are spent: an outcome that
    # records it against the item and goes on (None: the query fails).
    give_up: Callable[[Query, str], Outcome] | None = None
    # The step runs once per item (the query's progress_done of progress_total): its items
    # count in the run's progress one by one; any other step counts as one.
    per_item: bool = False


class Feed(StrEnum):
    """Which of a run's results the board reads (the containers board merges them)."""

    # The whole containers sheet (ContainerRow): the account's list of containers.
    SHEET = "sheet"
    # Per-container details (ContainerInfo): pregate, booking number, milestones.
    DETAILS = "details"
    # Slot checks (AppointmentCheck).
    CHECKS = "checks"


@dataclass(frozen=True)
class QueryKind:
    code: str
    label: str
    # The kind's parameters: one form (a `kinds.params.KindParams`), used by the page, the
    # admin (re-runs) and the command; its cleaned data is what the query stores.
    params: type[KindParams]
    steps: dict[str, Step]
    first_step: str
    # Estimated upstream seconds still to go from the query's next step (which step runs
    # next depends on it); by default the seconds of the steps from that one on.
    work_left: Callable[[Query], int] | None = None
    # A short description for the start form.
    help_text: str = ""
    # Place in lists (the start form's choice, the admin filter).
    order: int = 100
    # What a succeeded run of this kind feeds the board (nothing: the board ignores it).
    feeds_board: frozenset[Feed] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        return self.steps[name]

    def step_label(self, name: str) -> str:
        step = self.steps.get(name)
        return step.label if step else name.replace("_", " ")

    def estimate(self, query: Query) -> int:
        if query.step == "":
            return 0
        if self.work_left is not None:
            return self.work_left(query)
        names = list(self.steps)
        if query.step not in names:
            return 0
        return sum(self.steps[name].seconds for name in names[names.index(query.step) :])


_kinds: dict[str, QueryKind] = {}


class UnknownKind(LookupError):
    pass


def register(kind: QueryKind) -> QueryKind:
    """Add a kind (a module of `queries_app/kinds/` calls this once)."""
    if kind.first_step not in kind.steps:
        raise ValueError(f"kind {kind.code}: first step {kind.first_step!r} is not one of its")
    _kinds[kind.code] = kind
    return kind


def unregister(code: str) -> None:
    _kinds.pop(code, None)


def get_kind(code: str) -> QueryKind:
    try:
        return _kinds[code]
    except KeyError:
        raise UnknownKind(code) from None


def all_kinds() -> list[QueryKind]:
    return sorted(_kinds.values(), key=lambda kind: (kind.order, kind.code))


def board_feed(code: str) -> frozenset[Feed]:
    """What a kind feeds the board; nothing for a kind no longer registered."""
    kind = _kinds.get(code)
    return kind.feeds_board if kind else frozenset()


def board_kinds() -> list[str]:
    """The kinds whose runs the board reads."""
    return [kind.code for kind in all_kinds() if kind.feeds_board]


def kind_choices() -> list[tuple[str, str]]:
    """The `Query.kind` choices (a callable: a new kind needs no migration)."""
    return [(kind.code, kind.label) for kind in all_kinds()]
