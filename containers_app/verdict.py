"""Whether a container still needs a pickup: one rule, here, from the containers sheet (trade
type, status, holds) and the latest timeline read for it.

E-Modal's sheets say IMPORT/EXPORT, a status of GATE OUT, IN YARD, ON VESSEL or GATE IN, and
holds YES/NO (`N/A` everywhere for a container it knows nothing about). Every combination seen
in the customer's real sheets has an answer below; anything else is `unknown` — shown as such,
counted for staff, never turned into "ready" or "picked up" by a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models

from queries_app.parsing import milestone_key


class Pickup(models.TextChoices):
    READY = "ready", "Ready to pick up"
    ON_HOLD = "on_hold", "On hold"
    NOT_ARRIVED = "not_arrived", "Not arrived yet"
    PICKED_UP = "picked_up", "Picked up"
    EXPORT = "export", "Export"
    UNKNOWN = "unknown", "Not known"


# The verdicts of containers a dispatcher still has to pull: the only ones whose last free day
# is urgent, counted, alerted about and charged for.
NEEDS_PICKUP = (Pickup.READY.value, Pickup.ON_HOLD.value)

# Import statuses, as the sheet writes them (upper case).
ARRIVED = {"IN YARD"}
AWAY = {"ON VESSEL"}
# Out of the gate, or the empty back in (an import's GATE IN is its empty returning).
GONE_OUT = {"GATE OUT", "GATE IN"}

# Completed timeline milestones that mean the full container has left the terminal.
LEFT_TERMINAL = {
    "departed terminal",
    "container departed terminal",
    "arrived at customer",
    "empty received",
    "empty container received",
    "empty returned",
}


@dataclass(frozen=True)
class Verdict:
    pickup: str
    # Why, in words for staff (which status or milestone decided it).
    reason: str


def left_terminal(timeline: Iterable[Any] | None) -> bool:
    """Whether a timeline (the upstream's, or the stored milestones) shows the container out of
    the terminal: a completed Departed Terminal, Arrived at customer or Empty Received."""
    for item in timeline or []:
        if not isinstance(item, dict):
            continue
        if milestone_key(item.get("milestone")) not in LEFT_TERMINAL:
            continue
        if str(item.get("status") or "").lower() == "completed":
            return True
    return False


def pickup_verdict(
    *, trade_type: str, status: str, holds: bool | None, left: bool = False
) -> Verdict:
    """The verdict for one container. `left`: its latest timeline shows it out of the
    terminal (the sheet may lag behind the timeline, never the other way round)."""
    trade = (trade_type or "").strip().upper()
    state = (status or "").strip().upper()
    if trade == "EXPORT":
        return Verdict(Pickup.EXPORT, "an export")
    if trade != "IMPORT":
        return Verdict(Pickup.UNKNOWN, f"trade type {trade or 'not given'}")
    if left:
        return Verdict(Pickup.PICKED_UP, "the timeline shows it out of the terminal")
    if state in GONE_OUT:
        return Verdict(Pickup.PICKED_UP, f"status {state}")
    if state in AWAY:
        return Verdict(Pickup.NOT_ARRIVED, f"status {state}")
    if state in ARRIVED:
        if holds is True:
            return Verdict(Pickup.ON_HOLD, "holds YES")
        if holds is False:
            return Verdict(Pickup.READY, f"status {state}, holds NO")
        return Verdict(Pickup.UNKNOWN, f"status {state}, holds not given")
    return Verdict(Pickup.UNKNOWN, f"status {state or 'not given'}")


def container_verdict(container: Any) -> Verdict:
    return pickup_verdict(
        trade_type=container.trade_type,
        status=container.status,
        holds=container.holds,
        left=bool(container.left_terminal),
    )


def needs_pickup(pickup: str) -> bool:
    return pickup in NEEDS_PICKUP
