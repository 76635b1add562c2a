"""Glitches: the transient failures the real server answers now and then for a page that was
slow, a row that did not expand, a dropdown not rendered yet. Each endpoint fails with its own
real texts (the contract's table of transient texts). A glitch is injected at a rate
(``glitch_rate`` in the config or in ``/_sim/chaos``, seeded) or by a counted fault
(``{"mode": "glitch", "kind": ...}``); the endpoint answers it at the step where the real
server would, with the same side effects (a failed check still holds its workflow).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Steps of the appointment page where a glitch may strike, by the name the fault's "step"
# takes. Dropdown glitches strike the three Phase-1 dropdowns (and the booking's slot).
CHECK_STEPS = ("trucking", "terminal", "move", "container", "next1", "checkbox", "plate", "next2")
DROPDOWN_STEPS = ("trucking", "terminal", "move")
MAKE_DROPDOWN_STEPS = (*DROPDOWN_STEPS, "appointment")

# Kinds every operation knows (where its code has such a path).
_COMMON = ("navigation", "unexpected", "html500")

# endpoint -> kinds a whole call may take.
CALL_KINDS: dict[str, tuple[str, ...]] = {
    "/get_containers": (*_COMMON, "download", "operation"),
    "/get_container_timeline": (*_COMMON, "search", "expand", "timeline", "pregate", "operation"),
    "/get_booking_number": (*_COMMON, "search", "expand", "booking", "operation"),
    "/get_info_bulk": ("navigation", "exception", "html500"),
    "/check_appointments": (
        *_COMMON,
        "dropdown_missing",
        "options_empty",
        "stale",
        "plate_field",
        "time_dropdown",
        "calendar_missed",
    ),
    "/get_appointments": (*_COMMON, "checkbox", "excel_button", "excel_missing", "operation"),
    "/make_appointment": (
        *_COMMON,
        "page_setup",
        "dropdown_missing",
        "options_empty",
        "stale",
        "plate_field",
        "submit",
    ),
}
# get_info_bulk: kinds of one container's entry (each entry is rolled on its own).
ENTRY_KINDS: dict[str, tuple[str, ...]] = {
    "import": (
        "entry_search",
        "entry_expand",
        "entry_exception",
        "entry_timeline",
        "entry_pregate",
    ),
    "export": ("entry_search", "entry_expand", "entry_exception", "entry_booking"),
}
ALL_ENTRY_KINDS = tuple(dict.fromkeys(k for kinds in ENTRY_KINDS.values() for k in kinds))
GLITCH_ENDPOINTS = tuple(CALL_KINDS)


@dataclass
class Glitch:
    """The glitch a call will meet: ``kind``, and where (``step`` of the appointment page,
    ``container_id`` of a bulk entry; empty means the first place it can strike)."""

    kind: str
    step: str = ""
    container_id: str = ""
    exception: str = ""
    fired: bool = False

    def public(self) -> dict[str, str]:
        return {"kind": self.kind, "step": self.step, "container_id": self.container_id}


def kinds_for(endpoint: str) -> tuple[str, ...]:
    kinds = CALL_KINDS.get(endpoint, ())
    return (*kinds, *ALL_ENTRY_KINDS) if endpoint == "/get_info_bulk" else kinds


def validate(endpoint: str, kind: str, step: str) -> None:
    """A counted glitch fault must name a kind its endpoint has (and a step it has)."""
    if endpoint not in CALL_KINDS:
        raise ValueError(f"glitches apply to {', '.join(GLITCH_ENDPOINTS)}")
    if kind and kind not in kinds_for(endpoint):
        raise ValueError(f"kind for {endpoint} must be one of {', '.join(kinds_for(endpoint))}")
    if step:
        if endpoint not in ("/check_appointments", "/make_appointment"):
            raise ValueError("step applies to /check_appointments and /make_appointment only")
        allowed = (*CHECK_STEPS, "appointment") if endpoint == "/make_appointment" else CHECK_STEPS
        if step not in allowed:
            raise ValueError(f"step must be one of {', '.join(allowed)}")


def pick(endpoint: str, rng: random.Random, exceptions: tuple[str, ...]) -> Glitch:
    """A random glitch of ``endpoint`` (a whole-call kind), with its step where it needs one."""
    kind = rng.choice(CALL_KINDS[endpoint])
    step = ""
    if kind in ("dropdown_missing", "options_empty"):
        steps = MAKE_DROPDOWN_STEPS if endpoint == "/make_appointment" else DROPDOWN_STEPS
        step = rng.choice(steps)
    elif kind == "stale":
        step = rng.choice(CHECK_STEPS)
    return Glitch(kind, step, exception=rng.choice(exceptions))


def pick_entry(trade: str, rng: random.Random, exceptions: tuple[str, ...]) -> Glitch:
    return Glitch(rng.choice(ENTRY_KINDS[trade]), exception=rng.choice(exceptions))
