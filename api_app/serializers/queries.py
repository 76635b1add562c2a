"""Queries and their result rows (/api/v1/queries/…), and the results table's filters."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from emodal_portal.ids import MAX_ID
from history.models import HistoryEntry
from queries_app.models import (
    AppointmentCheck,
    AppointmentRow,
    ContainerInfo,
    Query,
)
from queries_app.registry import get_kind
from queries_app.selectors import CONTAINER_SORTS


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
        started_by = query.started_by  # None, without a read, when there is no id
        return started_by.get_username() if started_by is not None else None


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


class ChangeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=HistoryEntry.Change.choices)
    # Named like DRF's own `Serializer.fields` (the API's name): the stubs see a clash.
    fields = serializers.DictField(  # type: ignore[assignment]
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
        help_text="What the board observed changing for it when it merged this run: new, back "
        "(on the account's sheet again), changed, or an appointment booked (null: nothing)."
    )

    @extend_schema_field(ChangeSerializer(allow_null=True))
    def get_change(self, row: Any) -> dict[str, Any] | None:
        if not getattr(row, "change_kind", None):
            return None
        return {"kind": row.change_kind, "fields": row.change_fields or {}}


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
        help_text="Only containers with a change observed by this run (see `change`).",
    )
    sort = serializers.ChoiceField(
        choices=[key for key in CONTAINER_SORTS] + [f"-{key}" for key in CONTAINER_SORTS],
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
    """One change the board observed when it merged the run (its history entry)."""

    # Named like DRF's own `Serializer.fields` (the API's name): the stubs see a clash.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(), help_text="Field name: [before, after]."
    )
    previous_query = serializers.IntegerField(
        source="previous_query_id",
        allow_null=True,
        help_text="The run whose observation the board held before this one (what it was "
        "compared with): the account's previous containers sheet for new, back, gone and the "
        "sheet's fields; the previous details or slot check for theirs. Null when unknown.",
    )

    class Meta:
        model = HistoryEntry
        fields = ["container_number", "change", "fields", "previous_query"]
