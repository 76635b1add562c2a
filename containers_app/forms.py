"""Forms of the board's pages: its filters and recurring runs. They shape input; the services
decide (a recurring run is validated by `recurring.save_recurring_run`, like any start)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from portal.forms import add_service_error
from portal.timezones import time_zone_choices
from queries_app.recurring_run import WEEKDAYS
from queries_app.registry import all_kinds
from sessions_app.models import Account

from .selectors import NEEDS, BoardFilters
from .verdict import Pickup

# The board's pickup filter: any, both verdicts that still need a pickup, or one verdict.
PICKUP_CHOICES = [("", "Any"), (NEEDS, "Needs a pickup (ready or on hold)"), *Pickup.choices]
DUE_CHOICES = [
    ("", "Any"),
    ("overdue", "Overdue"),
    ("today", "Due today"),
    ("soon", "Due in 1–2 days"),
]

ANY_YES_NO = [("", "Any"), ("yes", "Yes"), ("no", "No")]


class DateInput(forms.DateInput):
    input_type = "date"


class BoardFilterForm(forms.Form):
    q = forms.CharField(label="Container", required=False, max_length=20)
    pickup = forms.ChoiceField(label="Pickup", required=False, choices=PICKUP_CHOICES)
    due = forms.ChoiceField(
        label="Last free day",
        required=False,
        choices=DUE_CHOICES,
        help_text="Only containers that still need a pickup.",
    )
    due_within = forms.IntegerField(
        label="Last free day within (days)",
        required=False,
        min_value=0,
        max_value=365,
        help_text="Overdue ones included; only containers that still need a pickup.",
    )
    holds = forms.ChoiceField(label="Holds", required=False, choices=ANY_YES_NO)
    slot = forms.ChoiceField(label="Available slot", required=False, choices=ANY_YES_NO)
    terminal = forms.ChoiceField(label="Terminal", required=False)
    changed_since = forms.DateField(
        label="Changed since", required=False, widget=DateInput, help_text="Day, in your zone."
    )
    watched = forms.ChoiceField(
        label="Watched", required=False, choices=[("", "Any"), ("yes", "★ Watched only")]
    )
    show = forms.ChoiceField(
        label="Containers",
        required=False,
        choices=[("", "On the list"), ("gone", "Gone from the list"), ("all", "All")],
    )
    account = forms.ModelChoiceField(
        label="Account",
        required=False,
        queryset=Account.objects.none(),
        empty_label="All accounts",
    )

    def __init__(
        self, *args: Any, terminals: list[tuple[str, str]], accounts: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["terminal"]).choices = [("", "Any"), *terminals]
        if accounts is None:
            del self.fields["account"]
        else:
            cast(forms.ModelChoiceField, self.fields["account"]).queryset = accounts

    def filters(self) -> dict[str, Any]:
        """The valid filters; a bad value in one is reported and ignored, the others apply."""
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if name not in self.errors}

    def board_filters(self, sort: str) -> BoardFilters:
        """The valid filters with this sort (an unknown one: the default)."""
        return BoardFilters.from_input(self.filters(), sort)


def schedulable_kinds() -> list[tuple[str, str]]:
    """Kinds that take no per-run parameter: the ones a recurring run on the board makes sense
    for (the command may schedule others, their parameters checked by the kind's own form)."""
    return [(kind.code, kind.label) for kind in all_kinds() if not kind.params.base_fields]


class RecurringRunForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none(), empty_label=None)
    kind = forms.ChoiceField(label="Run")
    weekdays = forms.MultipleChoiceField(
        label="On",
        widget=forms.CheckboxSelectMultiple,
        choices=[(str(day), name) for day, name in enumerate(WEEKDAYS)],
        error_messages={"required": "Choose at least one day of the week."},
    )
    times = forms.CharField(
        label="At",
        max_length=200,
        help_text="Times of day, 24-hour clock, e.g. 06:30, 13:00.",
        error_messages={"required": "Give at least one time of day, e.g. 07:30."},
    )
    time_zone = forms.ChoiceField(label="Time zone")

    def __init__(self, *args: Any, accounts: Any, zone: str, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("time_zone", zone)
        kwargs["initial"].setdefault("weekdays", ["0", "1", "2", "3", "4"])
        kwargs["initial"].setdefault("kind", "availability")
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["kind"]).choices = schedulable_kinds()
        cast(forms.ChoiceField, self.fields["time_zone"]).choices = time_zone_choices(zone)
        if accounts is None:
            del self.fields["account"]
        else:
            cast(forms.ModelChoiceField, self.fields["account"]).queryset = accounts

    def add_service_error(self, error: ValidationError) -> None:
        add_service_error(self, error)
