"""Forms of the results pages: starting a query and filtering a containers table.

The start form shows the kind's choice and, for every kind in the registry, the fields of its
parameter form (one field per name, shared by the kinds that take it; the page's script shows
those of the chosen kind). It only shapes input: the kind's own parameter form, through
`services.start_query`, decides, and its verdict is put back on these fields.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from portal.forms import add_service_error
from sessions_app.models import Account

from .registry import all_kinds, kind_choices


def shown_field(field: forms.Field) -> forms.Field:
    """A field that shows like `field` and keeps what was typed, but decides nothing (the
    kind's parameter form does)."""
    widget = field.widget.__class__(attrs=dict(field.widget.attrs))
    if hasattr(field, "choices"):
        widget.choices = list(field.choices)
    return forms.CharField(
        label=field.label, help_text=field.help_text, required=False, widget=widget, strip=False
    )


class StartQueryForm(forms.Form):
    account = forms.ModelChoiceField(
        # Only names are shown: the secrets stay encrypted in the database.
        queryset=Account.objects.select_related("user").defer(*Account.SECRET_FIELDS),
        required=False,
        empty_label=None,
    )
    kind = forms.ChoiceField(choices=kind_choices)

    def __init__(self, *args: Any, choose_account: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Which kinds each parameter field belongs to (the hints, and the script).
        self.field_kinds: dict[str, list[Any]] = {}
        for kind in all_kinds():
            for name, field in kind.params.base_fields.items():
                if name not in self.fields:
                    self.fields[name] = shown_field(field)
                self.field_kinds.setdefault(name, []).append(kind)
        if choose_account:
            self.fields["account"].required = True
        else:
            del self.fields["account"]

    def param_fields(self) -> list[tuple[forms.BoundField, str, str]]:
        """Each parameter field with the kinds that take it: codes for the script, words for
        the hint that a reader without the script sees."""
        return [
            (
                self[name],
                " ".join(kind.code for kind in kinds),
                ", ".join(str(kind.label) for kind in kinds),
            )
            for name, kinds in self.field_kinds.items()
        ]

    def params(self, kind: Any) -> dict[str, Any]:
        """What was typed into the fields of the chosen kind, for its parameter form."""
        return {
            name: self.cleaned_data.get(name, "")
            for name in kind.params.base_fields
            if self.cleaned_data.get(name, "") != ""
        }

    def add_service_error(self, error: ValidationError) -> None:
        add_service_error(self, error)


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
        cast(forms.ChoiceField, self.fields["trade"]).choices = [
            ("", "Any"),
            *((t, t) for t in trades),
        ]
        if not with_slots:
            del self.fields["slot"]
        if not with_changes:
            del self.fields["changed"]
