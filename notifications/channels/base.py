"""What every channel is: `record(events)` writes the deliveries its subscribers are owed for
these events (once per recipient and event: a unique constraint) and has them sent after the
commit; `send(delivery)` makes one attempt and says how it went (`Outcome`); `settle` does what
the channel does after an attempt, in the transaction that records it (a webhook endpoint that
failed for its whole retry schedule is disabled and its owner told)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from outbox.models import Event

if TYPE_CHECKING:
    from ..models import Delivery


@dataclass(frozen=True)
class Outcome:
    """One attempt: delivered (`ok`), or why not and whether another try may do better
    (`transient`); `cancelled`: not attempted at all (nothing counted)."""

    ok: bool
    error: str = ""
    transient: bool = False
    response_code: int | None = None
    response_body: str = ""
    seconds: float = 0.0
    cancelled: bool = False


class Channel(Protocol):
    name: str

    def record(self, events: list[Event]) -> int:
        """Record the deliveries these events call for; returns how many."""
        ...

    def claim_seconds(self) -> float:
        """How long a sender holds a delivery: past it, the sender is taken for dead."""
        ...

    def lost_after(self) -> timedelta:
        """How long a delivery asked for waits before the sweep asks again (a lost task)."""
        ...

    def send(self, delivery: Delivery, now: datetime) -> Outcome:
        """One attempt; never raises for a failure of the recipient's side."""
        ...

    def error_words(self, outcome: Outcome, attempt: int, *, again: bool) -> str:
        """What the delivery's row says of a failed attempt (`again`: another is planned)."""
        ...

    def settle(self, delivery: Delivery, outcome: Outcome, *, status: str, at: datetime) -> None:
        """After an attempt, in the transaction that records it."""
        ...
