"""One appointment check: the slots (an import) or the calendar (an export) for a container
at a terminal, for one move type. Nothing is ever booked."""

from __future__ import annotations

from typing import Any

import queries_app.kinds.checking as checking

from ..engine.steps import DONE, Outcome, StepContext
from ..models import ContainerRow, Query
from ..registry import Feed, QueryKind, Step, register
from .params import (
    MOVE_TYPES,
    BookingNumberField,
    ChoiceOfField,
    ColumnTextField,
    ContainerNumberField,
    KindParams,
    TerminalField,
)


class AppointmentCheckParams(KindParams):
    needs_appointment_details = True

    container_type = ChoiceOfField(
        ("import", "export"),
        error="Choose import or export.",
        upper=False,
        label="Import or export",
    )
    container_id = ContainerNumberField(required=False)
    booking_number = BookingNumberField(required=False)
    terminal = TerminalField()
    move_type = ChoiceOfField(
        MOVE_TYPES, error=f"Choose one of: {', '.join(MOVE_TYPES)}.", upper=True, label="Move type"
    )
    line = ColumnTextField(ContainerRow, "line", label="Line", help_text="Imports: the line.")
    equip_size = ColumnTextField(
        ContainerRow,
        "size_type",
        label="Size/type",
        help_text="Imports: e.g. 40DH (some terminals need line and size to find a container).",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("container_type")
        if kind == "export":
            if not cleaned.get("booking_number") and "booking_number" not in self.errors:
                self.add_error("booking_number", "An export check needs the booking number.")
            for name in ("container_id", "line", "equip_size"):
                cleaned.pop(name, None)
        elif kind == "import":
            if not cleaned.get("container_id") and "container_id" not in self.errors:
                self.add_error("container_id", "A container number is required.")
            cleaned.pop("booking_number", None)
        return cleaned

    def params(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if value not in ("", None) or name in ("container_type", "terminal", "move_type")
        }


def planned(query: Query) -> checking.Checks:
    params = query.params
    item = {
        "container": params.get("container_id", ""),
        "container_type": params["container_type"],
        "move_type": params["move_type"],
        "terminal_code": params["terminal"],
        "booking_number": params.get("booking_number", ""),
        "line": params.get("line", ""),
        "equip_size": params.get("equip_size", ""),
    }
    return checking.Checks(items=[item], index=0, after=lambda done: DONE, single=True)


def appointment_check(ctx: StepContext) -> Outcome:
    outcome = checking.check(ctx, planned(ctx.query))
    outcome.progress_total = 1
    return outcome


APPOINTMENT_CHECK = register(
    QueryKind(
        code="appointment_check",
        label="Appointment check",
        params=AppointmentCheckParams,
        steps={
            "appointment_check": Step(
                appointment_check, "Checking appointment slots", checking.CHECK_SECONDS
            )
        },
        first_step="appointment_check",
        help_text="Available slots for one container or booking (nothing is booked).",
        order=70,
        feeds_board=frozenset({Feed.CHECKS}),
    )
)
