"""The alert settings' form: it shapes input, the model keeps it."""

from __future__ import annotations

from django import forms

from containers_app.models import LFD_DUE_MAX_DAYS

from .models import ALERT_EVENT_TYPES, AlertPreference


class AlertPreferenceForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        label="Tell me about",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(kind.value, kind.label) for kind in ALERT_EVENT_TYPES],
    )
    lfd_due_days = forms.IntegerField(
        label="“Last free day within a few days” means within (days)",
        min_value=0,
        max_value=LFD_DUE_MAX_DAYS,
        help_text=f"0 (today) to {LFD_DUE_MAX_DAYS}; only containers still to pick up, overdue "
        "ones always; sent once per container and day.",
    )

    class Meta:
        model = AlertPreference
        fields = ["channel", "events", "scope", "lfd_due_days"]
        widgets = {"channel": forms.RadioSelect, "scope": forms.RadioSelect}
        labels = {"channel": "Send alerts by", "scope": "For"}

    def clean_events(self) -> list[str]:
        chosen = set(self.cleaned_data["events"])
        return [kind.value for kind in ALERT_EVENT_TYPES if kind.value in chosen]
