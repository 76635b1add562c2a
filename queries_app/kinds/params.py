"""Parameters of query kinds: one form per kind (`KindParams`), used by the start page, the
admin (re-runs) and the `run_queries` command alike, and the fields they are made of. Every
field is checked against the column it ends up in, a list's size before its items, and nothing
is taken from user text that the portal has not validated."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from sessions_app.models import Account

from .. import parsing
from ..models import AppointmentCheck, Terminal

# The most containers one bulk-info query takes (the upstream reads them one after another,
# 5-10 s each: 200 is already half an hour).
MAX_BULK_CONTAINERS = 200
# Room for that many numbers generously spaced: longer text is refused before it is split.
MAX_LIST_TEXT = 8000
MOVE_TYPES = ("PICK FULL", "DROP EMPTY", "DROP FULL", "PICK EMPTY")
BOOKING_NUMBER_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]*$", re.ASCII)
LIST_SEPARATORS_RE = re.compile(r"[\s,;]+")


class KindParams(forms.Form):
    """A kind's parameters. `account` is the account the query is for (some kinds need its
    appointment details); `params()` is what the query stores (JSON)."""

    # Kinds whose steps check appointments need the account's trucking company and plate.
    needs_appointment_details = False

    def __init__(self, *args: Any, account: Account | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        account = self.account
        if self.needs_appointment_details and not (
            account is not None and account.trucking_company and account.truck_plate
        ):
            raise ValidationError(
                "Appointment checks need the account's trucking company and truck plate; "
                "set them on the account first."
            )
        return cleaned

    def params(self) -> dict[str, Any]:
        """The cleaned values to store; empty optional ones left out."""
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if value not in ("", None) or self.fields[name].required
        }


def container_number(value: Any) -> str:
    """A container number, normalised (no separators, upper case) and checked: 4 ASCII letters
    and 7 ASCII digits."""
    number = parsing.normalise_container_number(str(value or ""))
    if not number:
        raise ValidationError("A container number is required.", code="required")
    if not parsing.is_container_number(number):
        shown = str(value)[:24] + ("…" if len(str(value)) > 24 else "")
        raise ValidationError(
            f"“{shown}” is not a container number (4 letters and 7 digits, e.g. MSCU1234567).",
            code="invalid",
        )
    return number


class ContainerNumberField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Container number")
        kwargs.setdefault("max_length", 20)
        kwargs.setdefault("error_messages", {"required": "A container number is required."})
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        return container_number(value) if value or self.required else ""


class ContainerListField(forms.Field):
    """Container numbers, given as a list or as text (one per line, or separated by commas or
    spaces): checked once each, repeats dropped, order kept. The count is checked first, so a
    huge list costs no more than counting it."""

    widget = forms.Textarea(attrs={"rows": 3})
    default_error_messages = {
        "too_long": (
            f"Too many containers: a bulk query takes at most {MAX_BULK_CONTAINERS} "
            "containers at once."
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "One per line, or separated by commas or spaces.")
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        if value in (None, ""):
            return []
        if isinstance(value, str):
            if len(value) > MAX_LIST_TEXT:
                raise ValidationError(self.error_messages["too_long"], code="too_long")
            value = [item for item in LIST_SEPARATORS_RE.split(value) if item]
        if not isinstance(value, list | tuple):
            raise ValidationError("Give a list of container numbers.", code="invalid")
        if len(value) > MAX_BULK_CONTAINERS:
            raise ValidationError(
                f"At most {MAX_BULK_CONTAINERS} containers at once (got {len(value)}).",
                code="too_many",
            )
        numbers: dict[str, None] = {}
        wrong: list[str] = []
        for item in value:
            try:
                numbers[container_number(item)] = None
            except ValidationError as exc:
                wrong.extend(exc.messages)
        if wrong:
            messages = wrong[:3]
            if len(wrong) > 3:
                messages[-1] += f" ({len(wrong) - 3} more like these)"
            raise ValidationError(messages, code="invalid")
        return list(numbers)

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list | tuple) else value


class BookingNumberField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Booking number")
        kwargs.setdefault("help_text", "Exports only.")
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        booking = str(value or "").strip().upper()
        width = AppointmentCheck._meta.get_field("booking_number").max_length or 0
        if not booking:
            if self.required:
                raise ValidationError("An export check needs the booking number.")
            return ""
        if len(booking) > width:
            raise ValidationError(f"A booking number has at most {width} characters.")
        if not BOOKING_NUMBER_RE.match(booking):
            raise ValidationError("A booking number has only letters, digits and dashes.")
        return booking


class ColumnTextField(forms.CharField):
    """Optional text stored upper case, no longer than the column `model.column`."""

    def __init__(self, model: Any, column: str, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", model._meta.get_field(column).max_length)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        value = super().clean(value).upper()
        if value and not value.isprintable():
            raise ValidationError("Only printable characters, please.")
        return value


def named_terminals() -> list[tuple[str, str]]:
    """(code, name) of the active terminals staff have named, by name."""
    named = Terminal.objects.filter(active=True).exclude(name="").order_by("name")
    return list(named.values_list("code", "name"))


def terminal_choices() -> list[tuple[str, str]]:
    return [("", "—")] + [(code, f"{name} ({code})") for code, name in named_terminals()]


class TerminalField(forms.ChoiceField):
    """A terminal with an E-Modal name, given by its code (`TTI`) or its name; cleaned to the
    code (checks go out with the name the appointment page lists)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "Terminals E-Modal's appointment page lists; staff add more in the admin.",
        )
        kwargs.setdefault("error_messages", {"required": "Choose the terminal."})
        super().__init__(choices=terminal_choices, **kwargs)

    def clean(self, value: Any) -> str:
        text = str(value or "").strip()
        if not text:
            raise ValidationError(self.error_messages["required"], code="required")
        for code, name in named_terminals():
            if text.upper() == code.upper() or text.lower() == name.lower():
                return code
        raise ValidationError(
            f"“{text[:40]}” is not a terminal with an E-Modal name; choose one from the list "
            "(staff add terminals in the admin)."
        )


class ChoiceOfField(forms.ChoiceField):
    """A choice given in any case and with spaces around; `error` when it is none of them."""

    def __init__(self, values: tuple[str, ...], *, error: str, upper: bool, **kwargs: Any):
        self.values, self.upper, self.error = frozenset(values), upper, error
        kwargs.setdefault("required", False)
        super().__init__(choices=[("", "—"), *((v, v) for v in values)], **kwargs)

    def clean(self, value: Any) -> str:
        text = str(value or "").strip()
        text = text.upper() if self.upper else text.lower()
        if text not in self.values:
            raise ValidationError(self.error)
        return text


class NoParams(KindParams):
    """A kind that takes no parameter."""


__all__ = [
    "MAX_BULK_CONTAINERS",
    "MOVE_TYPES",
    "BookingNumberField",
    "ChoiceOfField",
    "ColumnTextField",
    "ContainerListField",
    "ContainerNumberField",
    "KindParams",
    "NoParams",
    "TerminalField",
]
