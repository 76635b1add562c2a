"""Forms of the results pages: starting a query and filtering a containers table.

They only shape input; what a query's parameters must be is decided by
`services.start_query`, whose ValidationError the views put back on these forms.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from sessions_app.models import Account

from .models import Query, Terminal
from .services import MAX_BULK_CONTAINERS

# The contract's move types, offered as a list; the service has the last word on them.
MOVE_TYPE_CHOICES = [
    ("", "—"),
    ("PICK FULL", "PICK FULL"),
    ("DROP EMPTY", "DROP EMPTY"),
    ("DROP FULL", "DROP FULL"),
    ("PICK EMPTY", "PICK EMPTY"),
]

# Which kinds each parameter field belongs to, for the hints next to it (and the script
# that hides fields a chosen kind does not take).
FIELD_KINDS: dict[str, list[str]] = {
    "container_id": [Query.Kind.TIMELINE, Query.Kind.BOOKING_NUMBER, Query.Kind.APPOINTMENT_CHECK],
    "import_containers": [Query.Kind.BULK_INFO],
    "export_containers": [Query.Kind.BULK_INFO],
    "container_type": [Query.Kind.APPOINTMENT_CHECK],
    "booking_number": [Query.Kind.APPOINTMENT_CHECK],
    "terminal": [Query.Kind.APPOINTMENT_CHECK],
    "move_type": [Query.Kind.APPOINTMENT_CHECK],
    "line": [Query.Kind.APPOINTMENT_CHECK],
    "equip_size": [Query.Kind.APPOINTMENT_CHECK],
}


TOO_MANY_CONTAINERS = (
    f"Too many containers: a bulk query takes at most {MAX_BULK_CONTAINERS} containers at once."
)


def split_containers(text: str) -> list[str]:
    return [item for item in re.split(r"[\s,;]+", text or "") if item]


class StartQueryForm(forms.Form):
    account = forms.ModelChoiceField(
        # Only names are shown: the secrets stay encrypted in the database.
        queryset=Account.objects.select_related("user").defer(*Account.SECRET_FIELDS),
        required=False,
        empty_label=None,
    )
    kind = forms.ChoiceField(choices=Query.Kind.choices)
    container_id = forms.CharField(
        label="Container number", required=False, max_length=20, strip=True
    )
    import_containers = forms.CharField(
        label="Import containers",
        required=False,
        # Room for the most a bulk query takes (see services.MAX_BULK_CONTAINERS), generously
        # spaced; anything longer is refused before it is split.
        max_length=8000,
        error_messages={"max_length": TOO_MANY_CONTAINERS},
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, or separated by commas or spaces.",
    )
    export_containers = forms.CharField(
        label="Export containers",
        required=False,
        # Room for the most a bulk query takes (see services.MAX_BULK_CONTAINERS), generously
        # spaced; anything longer is refused before it is split.
        max_length=8000,
        error_messages={"max_length": TOO_MANY_CONTAINERS},
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, or separated by commas or spaces.",
    )
    container_type = forms.ChoiceField(
        label="Import or export",
        required=False,
        choices=[("", "—"), ("import", "Import"), ("export", "Export")],
    )
    booking_number = forms.CharField(
        label="Booking number", required=False, max_length=40, help_text="Exports only."
    )
    terminal = forms.ChoiceField(
        required=False,
        help_text="Terminals E-Modal's appointment page lists; staff add more in the admin.",
    )
    move_type = forms.ChoiceField(label="Move type", required=False, choices=MOVE_TYPE_CHOICES)
    line = forms.CharField(
        label="Line", required=False, max_length=40, help_text="Imports: the shipping line."
    )
    equip_size = forms.CharField(
        label="Size/type",
        required=False,
        max_length=20,
        help_text="Imports: e.g. 40DH (some terminals need line and size to find a container).",
    )

    def __init__(self, *args: Any, choose_account: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        named = Terminal.objects.filter(active=True).exclude(name="").order_by("name")
        self.fields["terminal"].choices = [("", "—")] + [
            (code, f"{name} ({code})") for code, name in named.values_list("code", "name")
        ]
        if choose_account:
            self.fields["account"].required = True
            self.fields["account"].label_from_instance = lambda account: str(account)
        else:
            del self.fields["account"]

    def param_fields(self) -> list[tuple[forms.BoundField, str, str]]:
        """Each parameter field with the kinds that take it: codes for the script, words for
        the hint that a reader without the script sees."""
        return [
            (
                self[name],
                " ".join(kinds),
                ", ".join(str(Query.Kind(kind).label) for kind in kinds),
            )
            for name, kinds in FIELD_KINDS.items()
        ]

    def params(self, names: list[str]) -> dict[str, Any]:
        """The cleaned values of the parameters a kind takes, as the service wants them."""
        params: dict[str, Any] = {}
        for name in names:
            value = self.cleaned_data.get(name, "")
            params[name] = (
                split_containers(value)
                if name in ("import_containers", "export_containers")
                else value
            )
        return params

    def add_service_error(self, error: ValidationError) -> None:
        """Put the service's verdict on the fields it names (the rest on the form)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error.messages)
            return
        for name, messages in error.message_dict.items():
            self.add_error(name if name in self.fields else None, messages)


class ContainerFilterForm(forms.Form):
    q = forms.CharField(label="Container", required=False, max_length=20)
    holds = forms.ChoiceField(
        label="Holds", required=False, choices=[("", "Any"), ("yes", "Yes"), ("no", "No")]
    )
    trade = forms.ChoiceField(label="Trade type", required=False)
    lfd_within = forms.IntegerField(
        label="Last free day within (days)",
        required=False,
        min_value=0,
        max_value=365,
        help_text="Overdue ones included.",
    )
    slot = forms.ChoiceField(
        label="Available slot",
        required=False,
        choices=[("", "Any"), ("yes", "Yes"), ("no", "No")],
    )
    changed = forms.ChoiceField(
        label="Since previous run",
        required=False,
        choices=[("", "Any"), ("yes", "New or changed")],
    )

    def __init__(
        self, *args: Any, trades: list[str], with_slots: bool, with_changes: bool, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trade"].choices = [("", "Any"), *((t, t) for t in trades)]
        if not with_slots:
            del self.fields["slot"]
        if not with_changes:
            del self.fields["changed"]


TIME_ZONE_CHOICES = [
    "America/Los_Angeles",
    "America/Denver",
    "America/Phoenix",
    "America/Chicago",
    "America/New_York",
    "America/Anchorage",
    "Pacific/Honolulu",
    "UTC",
]


class TimeZoneForm(forms.Form):
    timezone = forms.ChoiceField(label="Show times in")
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, current: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = TIME_ZONE_CHOICES if current in TIME_ZONE_CHOICES else [current, *TIME_ZONE_CHOICES]
        self.fields["timezone"].choices = [(name, name.replace("_", " ")) for name in names]
        self.fields["timezone"].initial = current
