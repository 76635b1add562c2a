"""The account form of the admin: secrets are write-only."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings

from .models import Account

SECRET_INPUT = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class AccountForm(forms.ModelForm):
    """Secrets are write-only: the inputs never render a value, and blank keeps the current."""

    new_password = forms.CharField(
        label="E-Modal password",
        required=False,
        strip=False,
        widget=SECRET_INPUT,
        help_text="Leave blank to keep the current password.",
    )
    new_captcha_api_key = forms.CharField(
        label="Captcha API key",
        required=False,
        widget=SECRET_INPUT,
        help_text="Leave blank to keep the current key.",
    )

    upstream_url = forms.ChoiceField(
        label="Upstream server",
        required=False,
        help_text="Where this account's sessions live. Changing it drops the current session.",
    )

    class Meta:
        model = Account
        fields = [
            "user",
            "emodal_username",
            "upstream_url",
            "trucking_company",
            "truck_plate",
            "own_chassis",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        servers = list(settings.EMODAL_API_URLS)
        if self.instance.upstream_url and self.instance.upstream_url not in servers:
            servers.append(self.instance.upstream_url)  # a server since removed: keep showing it
        cast(forms.ChoiceField, self.fields["upstream_url"]).choices = [
            ("", "Assign automatically")
        ] + [(url, url) for url in servers]
        username = self.instance.emodal_username if self.instance.pk else None
        if username is not None and not isinstance(username, str):
            self.initial["emodal_username"] = ""  # undecryptable: let staff enter it again
        if not self.instance.pk:
            for name in ("new_password", "new_captcha_api_key"):
                self.fields[name].required = True
                self.fields[name].help_text = ""

    def clean_emodal_username(self) -> str:
        return self.cleaned_data["emodal_username"].strip()
