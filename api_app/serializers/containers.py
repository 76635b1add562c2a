"""The container board (/api/v1/containers/): a container's latest state and its history."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from containers_app.board import SHEET_FIELDS
from containers_app.local_times import at_terminal, zone_of
from containers_app.models import Container
from containers_app.money import Charges, Tariffs
from containers_app.selectors import (
    DEFAULT_SORT,
    DUE_WINDOWS,
    PICKUP_FILTERS,
    SHOWS,
    SORTS,
    BoardFilters,
)
from containers_app.verdict import Pickup
from history.models import HistoryEntry
from sessions_app.models import Account


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
            # The root serializer's context: a dict, kept for the other rows.
            tariffs = cast(dict[str, Any], self.context)["tariffs"] = Tariffs.load()
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
    # Named like DRF's own `Serializer.fields` (the API's name): the stubs see a clash.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(), help_text="[before, after]"
    )

    class Meta:
        model = HistoryEntry
        fields = ["account", "query", "observed_at", "change", "fields"]


class ContainerDetailSerializer(serializers.Serializer):
    container_number = serializers.CharField()
    rows = BoardContainerSerializer(many=True, help_text="Its latest state, per account.")
    history = HistoryEntrySerializer(many=True, help_text="Newest first (at most 200).")


# What each of the board's filters means, said for an API caller.
BOARD_PARAMETER_TEXT = {
    "q": "Part of a container number.",
    "pickup": "Whether it still needs a pickup: one verdict (ready, on_hold, not_arrived, "
    "picked_up, export, unknown), or needs (ready or on_hold). Default: any.",
    "due": "Last free day overdue, today, or soon (in 1 or 2 days); only containers that still "
    "need a pickup (the windows do not overlap).",
    "due_within": "Last free day within this many days (0: today); overdue ones included; only "
    "containers that still need a pickup (ready, on_hold).",
    "holds": "With holds (yes) or without (no).",
    "slot": "With an available appointment slot found by the latest check (yes), or not (no).",
    "terminal": "A terminal's code, as in `terminal_code`.",
    "changed_since": f"Changed on or after this day, in the portal's zone ({settings.TIME_ZONE}).",
    "watched": "Only containers the token's owner watches (★).",
    "show": "Containers gone from their list (gone), or all; default: those on it.",
    "account": "Only this account's containers (an id from /api/v1/accounts/).",
}
# A bad filter reads as on the board page.
NOT_A_CHOICE = {
    "invalid_choice": "Select a valid choice. {input} is not one of the available choices."
}
NOT_AN_ACCOUNT = "Select a valid choice. That choice is not one of the available choices."
Q_MAX_LENGTH = 20


def choice(choices: list[str], name: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=sorted(choices),  # the schema lists them in this order
        required=False,
        help_text=BOARD_PARAMETER_TEXT[name],
        error_messages=NOT_A_CHOICE,
    )


class BoardFilterSerializer(serializers.Serializer):
    """The board's filters and sort as query parameters (`board_filters` reads them); the
    account's choices are the caller's (`accounts` in the context)."""

    q = serializers.CharField(required=False, help_text=BOARD_PARAMETER_TEXT["q"])
    pickup = choice(PICKUP_FILTERS, "pickup")
    due = choice(list(DUE_WINDOWS), "due")
    due_within = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=365,
        help_text=BOARD_PARAMETER_TEXT["due_within"],
        error_messages={"invalid": "Enter a whole number."},
    )
    holds = choice(["yes", "no"], "holds")
    slot = choice(["yes", "no"], "slot")
    terminal = serializers.CharField(required=False, help_text=BOARD_PARAMETER_TEXT["terminal"])
    changed_since = serializers.DateField(
        required=False,
        help_text=BOARD_PARAMETER_TEXT["changed_since"],
        error_messages={"invalid": "Enter a valid date."},
    )
    watched = choice(["yes"], "watched")
    show = choice(SHOWS, "show")
    account = serializers.PrimaryKeyRelatedField(
        queryset=Account.objects.none(),
        required=False,
        help_text=BOARD_PARAMETER_TEXT["account"],
        error_messages={"does_not_exist": NOT_AN_ACCOUNT, "incorrect_type": NOT_AN_ACCOUNT},
    )
    sort = serializers.ChoiceField(
        choices=sorted([*SORTS, *(f"-{key}" for key in SORTS)]),
        required=False,
        help_text=f"A column; a leading - reverses it (blanks last either way). "
        f"Default: {DEFAULT_SORT} (soonest last free day first).",
        error_messages={
            "invalid_choice": f"One of {', '.join(SORTS)}, optionally with a leading -."
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        account = self.fields["account"]
        assert isinstance(account, serializers.PrimaryKeyRelatedField)
        # (None when the schema reads the fields.)
        accounts = self.context.get("accounts", Account.objects.none())
        # The stubs read the Manager in this attribute's type as a descriptor of the field.
        account.queryset = accounts  # type: ignore[arg-type]

    def validate_q(self, value: str) -> str:
        if len(value) > Q_MAX_LENGTH:
            raise serializers.ValidationError(
                f"Ensure this value has at most {Q_MAX_LENGTH} characters (it has {len(value)})."
            )
        return value

    def board_filters(self) -> BoardFilters:
        values = dict(self.validated_data)
        return BoardFilters.from_input(values, values.pop("sort", ""))
