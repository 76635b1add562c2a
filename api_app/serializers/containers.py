"""The container board (/api/v1/containers/): a container's latest state and its history."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from containers_app.board import SHEET_FIELDS
from containers_app.local_times import at_terminal, zone_of
from containers_app.models import Container, HistoryEntry
from containers_app.money import Charges, Tariffs
from containers_app.verdict import Pickup


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
