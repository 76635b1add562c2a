"""Accounts and query kinds, as /api/v1/accounts/ and /api/v1/kinds/ show them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from queries_app.registry import QueryKind
from sessions_app.models import Account


class AccountSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="user.username", help_text="The portal user's name.")
    credential_state = serializers.ChoiceField(choices=Account.CredentialState.choices)
    needs_a_person = serializers.SerializerMethodField(
        help_text="Logins or appointment checks are stopped until someone fixes something."
    )
    may_start_queries = serializers.SerializerMethodField()

    class Meta:
        model = Account
        fields = [
            "id",
            "name",
            "credential_state",
            "needs_a_person",
            "trucking_company",
            "truck_plate",
            "may_start_queries",
        ]

    def get_needs_a_person(self, account: Account) -> bool:
        return account.logins_blocked or bool(account.appointment_error)

    def get_may_start_queries(self, account: Account) -> bool:
        from queries_app.access import may_start_for

        return may_start_for(self.context["request"].user, account)


class KindParamSerializer(serializers.Serializer):
    # `label`, `required`, `help_text`: the API's names, and attributes of DRF's own fields
    # (the stubs see each as a clash).
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    required = serializers.BooleanField()  # type: ignore[assignment]
    help_text = serializers.CharField()  # type: ignore[assignment]
    type = serializers.ChoiceField(choices=["string", "list of container numbers", "choice"])
    choices = serializers.ListField(child=serializers.CharField(), required=False)


class KindSerializer(serializers.Serializer):
    # `label`, `help_text`: as in KindParamSerializer.
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    help_text = serializers.CharField()  # type: ignore[assignment]
    params = serializers.SerializerMethodField()

    @extend_schema_field(KindParamSerializer(many=True))
    def get_params(self, kind: QueryKind) -> list[dict[str, Any]]:
        from queries_app.kinds.params import ContainerListField

        found = []
        for name, field in kind.params.base_fields.items():
            item: dict[str, Any] = {
                "name": name,
                "label": str(field.label or name),
                "required": field.required,
                "help_text": str(field.help_text or ""),
                "type": "string",
            }
            if isinstance(field, ContainerListField):
                item["type"] = "list of container numbers"
            elif isinstance(field, forms.ChoiceField):
                item["type"] = "choice"
                # A form field's choices are kept as (value, label) pairs.
                choices = cast("Iterable[tuple[Any, Any]]", field.choices)
                item["choices"] = [str(value) for value, _ in choices if value]
            found.append(item)
        return found
