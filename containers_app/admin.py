"""The board's records in the admin: read-only (they are written by runs and the board's
pages), filterable, searchable by container number or person. (Alerts and what people want to
hear of are the notifications app's.)"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from portal.admin import ReadOnlyAdmin

from .models import (
    Container,
    Event,
    Tariff,
    TariffTier,
)


@admin.register(Container)
class ContainerAdmin(ReadOnlyAdmin):
    list_display = (
        "container_number",
        "account",
        "trade_type",
        "status",
        "holds",
        "pickup",
        "last_free_day",
        "terminal_code",
        "slot_count",
        "sheet_seen_at",
        "gone_at",
    )
    # The pickup filter's counts tell staff how many containers have a status the portal does
    # not know ("Not known").
    list_filter = ("pickup", "trade_type", "holds", ("gone_at", admin.EmptyFieldListFilter))
    list_select_related = ("account__user",)
    search_fields = ("container_number", "account__user__username")
    exclude = ("account",)
    readonly_fields = ("account_name",)

    @admin.display(description="account")
    def account_name(self, obj: Container) -> str:
        return str(obj.account)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("type", "container_number", "account", "query", "occurred_at")
    list_filter = ("type",)
    list_select_related = ("account__user",)
    search_fields = ("container_number", "key")
    raw_id_fields = ("account", "container", "query")


class TariffTierInline(admin.TabularInline):
    model = TariffTier
    extra = 3
    min_num = 1


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin):
    """Staff set each terminal's demurrage tariff here; none by default (the board then says
    "no tariff" and shows no amount)."""

    list_display = ("terminal", "effective_from", "free_days", "rates", "note")
    list_filter = ("terminal",)
    list_select_related = ("terminal",)
    search_fields = ("terminal__code", "terminal__name", "note")
    autocomplete_fields = ("terminal",)
    inlines = [TariffTierInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("tiers")

    @admin.display(description="Rates")
    def rates(self, tariff: Tariff) -> str:
        return "; ".join(f"from day {t.from_day}: {t.daily_rate}/day" for t in tariff.tiers.all())
