"""What the API reads and writes, translated to and from JSON. Nothing here decides: rules
live in `queries_app.services`, `queries_app.access` and `api_app.webhooks.endpoints`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from containers_app.board import SHEET_FIELDS
from containers_app.local_times import at_terminal, zone_of
from containers_app.models import Container, HistoryEntry
from containers_app.money import Charges, Tariffs
from containers_app.verdict import Pickup
from emodal_portal.ids import MAX_ID
from queries_app.events import EventType
from queries_app.models import (
    AppointmentCheck,
    AppointmentRow,
    ContainerChange,
    ContainerInfo,
    Query,
)
from queries_app.registry import QueryKind, get_kind
from queries_app.tables import SORTABLE
from sessions_app.models import Account

from .models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint

# -- errors --------------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every error under /api/ has this shape."""

    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    code = serializers.CharField(
        help_text="A stable word: invalid, not_authenticated, authentication_failed, "
        "permission_denied, not_found, method_not_allowed, rate_limited, trigger_limit, "
        "conflict, payload_too_large, bad_request, server_error."
    )
    message = serializers.CharField(help_text="What went wrong, in words for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='Validation errors by field ("params.container_id"); "_" for the request '
        "as a whole.",
    )


# -- accounts and kinds ----------------------------------------------------------------------


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
    name = serializers.CharField()
    label = serializers.CharField()
    required = serializers.BooleanField()
    help_text = serializers.CharField()
    type = serializers.ChoiceField(choices=["string", "list of container numbers", "choice"])
    choices = serializers.ListField(child=serializers.CharField(), required=False)


class KindSerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()
    help_text = serializers.CharField()
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
                item["choices"] = [str(value) for value, _ in field.choices if value]
            found.append(item)
        return found


# -- queries ----------------------------------------------------------------------------------


class QuerySerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id")
    account_name = serializers.CharField(source="account.user.username")
    kind = serializers.CharField(help_text="A kind's code (GET /api/v1/kinds/).")
    kind_label = serializers.CharField(source="get_kind_display")
    status = serializers.ChoiceField(choices=Query.Status.choices)
    status_label = serializers.CharField(source="get_status_display")
    step_label = serializers.SerializerMethodField()
    percent = serializers.IntegerField(source="progress_percent")
    is_live = serializers.BooleanField()
    started_by = serializers.SerializerMethodField()

    class Meta:
        model = Query
        fields = [
            "id",
            "account",
            "account_name",
            "kind",
            "kind_label",
            "params",
            "status",
            "status_label",
            "is_live",
            "step",
            "step_label",
            "progress_done",
            "progress_total",
            "percent",
            "waiting_for",
            "cancel_requested",
            "error",
            "notes",
            "batch",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_step_label(self, query: Query) -> str:
        if not query.is_live or not query.step:
            return ""
        try:
            return str(get_kind(query.kind).step_label(query.step))
        except LookupError:
            return query.step

    def get_started_by(self, query: Query) -> str | None:
        return query.started_by.get_username() if query.started_by_id else None


class ResultCountsSerializer(serializers.Serializer):
    containers = serializers.IntegerField()
    infos = serializers.IntegerField()
    checks = serializers.IntegerField()
    appointments = serializers.IntegerField()
    changes = serializers.IntegerField()


class QueryDetailSerializer(QuerySerializer):
    results = serializers.SerializerMethodField(
        help_text="How many rows of each result the query has (each has its own endpoint)."
    )

    class Meta(QuerySerializer.Meta):
        fields = [*QuerySerializer.Meta.fields, "results"]

    @extend_schema_field(ResultCountsSerializer)
    def get_results(self, query: Query) -> dict[str, int]:
        from queries_app.selectors import result_counts

        return result_counts(query)


class StartQuerySerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="A kind's code (GET /api/v1/kinds/).")
    params = serializers.DictField(
        required=False,
        default=dict,
        help_text='The kind\'s parameters by name, e.g. {"container_id": "MSCU1234567"}; '
        "a list of containers as a JSON list or as text.",
    )
    account = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="The account to run it for (staff allowed to start queries for any "
        "account); by default the caller's own.",
    )


# -- result rows -------------------------------------------------------------------------------


class ChangeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ContainerChange.Change.choices)
    fields = serializers.DictField(
        child=serializers.ListField(), help_text="Field name: [before, after]."
    )


class ContainerSerializer(serializers.Serializer):
    """A container row as a results table shows it, with its slot check and change."""

    container_number = serializers.CharField()
    trade_type = serializers.CharField()
    status = serializers.CharField()
    holds = serializers.BooleanField(allow_null=True)
    last_free_day = serializers.DateField(allow_null=True)
    good_through = serializers.DateField(allow_null=True)
    pregate_ticket = serializers.CharField()
    pregate_status = serializers.CharField()
    gate_status = serializers.CharField()
    origin = serializers.CharField()
    destination = serializers.CharField()
    current_location = serializers.CharField()
    line = serializers.CharField()
    vessel_name = serializers.CharField()
    vessel_code = serializers.CharField()
    voyage = serializers.CharField()
    size_type = serializers.CharField()
    fees = serializers.CharField()
    tags = serializers.CharField()
    earliest_slot = serializers.DateTimeField(
        allow_null=True, help_text="The earliest appointment slot found, if it was checked."
    )
    slot_count = serializers.IntegerField(
        allow_null=True, help_text="Slots found; null when it was not checked."
    )
    change = serializers.SerializerMethodField(
        help_text="New or changed since the account's previous run (null: neither)."
    )

    @extend_schema_field(ChangeSerializer(allow_null=True))
    def get_change(self, row: Any) -> dict[str, Any] | None:
        if not getattr(row, "change_kind", None):
            return None
        return {"kind": row.change_kind, "fields": row.change_fields or {}}


class BoardContainerSerializer(serializers.ModelSerializer):
    """A container as the board shows it: its latest known state in one account, each part
    with the run that read it and when (the sheet, the details, the slot check)."""

    account = serializers.IntegerField(source="account_id")
    terminal_name = serializers.CharField(
        source="terminal.name", default="", help_text="E-Modal's name of `terminal_code`."
    )
    days_left = serializers.SerializerMethodField(
        help_text="Days until the last free day (negative: overdue; null: none known)."
    )
    pickup = serializers.ChoiceField(
        choices=Pickup.values,
        help_text="Whether it still needs a pickup: ready, on_hold, not_arrived, picked_up, "
        "export or unknown (a status the portal does not know).",
    )
    charges_to_date = serializers.SerializerMethodField(
        help_text="Demurrage accrued through today by its terminal's tariff (a decimal); null "
        "when it needs no pickup or its terminal has no tariff."
    )
    charge_per_day = serializers.SerializerMethodField(
        help_text="What another day would add (a decimal); null as for charges_to_date."
    )
    watched = serializers.BooleanField(help_text="Starred by the token's owner.")
    earliest_slot = serializers.SerializerMethodField(
        help_text="The earliest slot found, as an ISO time with the terminal's UTC offset "
        "(a slot is a local time at the terminal; null: none found or not checked)."
    )
    earliest_slot_text = serializers.CharField(
        help_text="The earliest slot as E-Modal wrote it (terminal time)."
    )
    terminal_time_zone = serializers.SerializerMethodField(
        help_text="The terminal's time zone (slots are local times there)."
    )
    sheet_query = serializers.IntegerField(
        source="sheet_query_id", allow_null=True, help_text="The run that read the sheet fields."
    )
    details_query = serializers.IntegerField(
        source="details_query_id", allow_null=True, help_text="The run that read the details."
    )
    check_query = serializers.IntegerField(
        source="check_query_id", allow_null=True, help_text="The run that checked for slots."
    )
    last_change_query = serializers.IntegerField(source="last_change_query_id", allow_null=True)
    last_change = serializers.DictField(
        help_text='What changed last: {"change": new/changed/gone/back, '
        '"fields": {name: [before, after]}}.'
    )

    class Meta:
        model = Container
        fields = [
            "account",
            "container_number",
            *SHEET_FIELDS,
            "terminal_code",
            "terminal_name",
            "days_left",
            "pickup",
            "charges_to_date",
            "charge_per_day",
            "passed_pregate",
            "booking_number",
            "check_outcome",
            "slot_count",
            "earliest_slot",
            "earliest_slot_text",
            "terminal_time_zone",
            "watched",
            "last_change",
            "last_change_at",
            "last_change_query",
            "first_seen_at",
            "gone_at",
            "sheet_query",
            "sheet_seen_at",
            "details_query",
            "details_seen_at",
            "check_query",
            "check_seen_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_earliest_slot(self, row: Container) -> str | None:
        local = at_terminal(row.earliest_slot, row.terminal)
        return local.isoformat() if local else None

    def get_terminal_time_zone(self, row: Container) -> str:
        return str(zone_of(row.terminal))

    def get_days_left(self, row: Container) -> int | None:
        return row.days_left(self.context.get("today") or timezone.localdate())

    def _charges(self, row: Container) -> Charges | None:
        tariffs = self.context.get("tariffs")
        if tariffs is None:
            tariffs = self.context["tariffs"] = Tariffs.load()
        return tariffs.charges(row, self.context.get("today") or timezone.localdate())

    @extend_schema_field(serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True))
    def get_charges_to_date(self, row: Container) -> str | None:
        owed = self._charges(row)
        return None if owed is None else f"{owed.to_date:.2f}"

    @extend_schema_field(serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True))
    def get_charge_per_day(self, row: Container) -> str | None:
        owed = self._charges(row)
        return None if owed is None else f"{owed.per_day:.2f}"


class HistoryEntrySerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id")
    query = serializers.IntegerField(
        source="query_id", allow_null=True, help_text="The run that observed it."
    )
    fields = serializers.DictField(child=serializers.ListField(), help_text="[before, after]")

    class Meta:
        model = HistoryEntry
        fields = ["account", "query", "observed_at", "change", "fields"]


class ContainerDetailSerializer(serializers.Serializer):
    container_number = serializers.CharField()
    rows = BoardContainerSerializer(many=True, help_text="Its latest state, per account.")
    history = HistoryEntrySerializer(many=True, help_text="Newest first (at most 200).")


class ContainerFilterSerializer(serializers.Serializer):
    """The containers table's filters and sort, as on the results page."""

    q = serializers.CharField(
        required=False, max_length=20, help_text="Part of a container number."
    )
    holds = serializers.ChoiceField(choices=["yes", "no"], required=False)
    trade = serializers.CharField(
        required=False, max_length=10, help_text="A trade type (e.g. IMPORT)."
    )
    lfd_within = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=365,
        help_text="Last free day within this many days (overdue ones included).",
    )
    slot = serializers.ChoiceField(
        choices=["yes", "no"], required=False, help_text="Has an available appointment slot."
    )
    changed = serializers.ChoiceField(
        choices=["yes"],
        required=False,
        help_text="Only containers new or changed since the previous run.",
    )
    sort = serializers.ChoiceField(
        choices=[key for key in SORTABLE] + [f"-{key}" for key in SORTABLE],
        required=False,
        help_text="A column; a leading - sorts descending (blanks last either way).",
    )


class InfoSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContainerInfo
        exclude = ["id", "query"]


class CheckSerializer(serializers.ModelSerializer):
    outcome = serializers.ChoiceField(choices=AppointmentCheck.Outcome.choices)

    class Meta:
        model = AppointmentCheck
        exclude = ["id", "query", "screenshot"]


class AppointmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = AppointmentRow
        exclude = ["id", "query", "raw"]


class ChangeRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContainerChange
        fields = ["container_number", "change", "fields", "previous_query"]


# -- webhooks ------------------------------------------------------------------------------------


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), allow_empty=False
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_at",
            "disabled_reason",
            "last_success_at",
            "last_failure_at",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "disabled_at",
            "disabled_reason",
            "last_success_at",
            "last_failure_at",
            "created_at",
        ]


class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), allow_empty=False
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    enabled = serializers.BooleanField(required=False)


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (Standard Webhooks, whsec_…): shown this once."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret: shown this once.")


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "duration_ms", "response_code", "error"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempt_log = DeliveryAttemptSerializer(many=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "is_test",
            "status",
            "attempts",
            "next_attempt_at",
            "response_code",
            "error",
            "created_at",
            "finished_at",
            "attempt_log",
        ]
