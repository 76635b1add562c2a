"""The history in the admin: read-only (written by the board's merges and bookings)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import HistoryEntry


@admin.register(HistoryEntry)
class HistoryEntryAdmin(admin.ModelAdmin):
    list_display = ("container_number", "change", "observed_at", "query")
    list_filter = ("change",)
    search_fields = ("container_number",)
    raw_id_fields = ("container", "query", "previous_query")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
