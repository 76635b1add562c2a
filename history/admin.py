"""The history in the admin: read-only (written by the board's merges and bookings)."""

from __future__ import annotations

from django.contrib import admin

from portal.admin import ReadOnlyAdmin

from .models import HistoryEntry


@admin.register(HistoryEntry)
class HistoryEntryAdmin(ReadOnlyAdmin):
    list_display = ("container_number", "change", "observed_at", "query")
    list_filter = ("change",)
    search_fields = ("container_number",)
    raw_id_fields = ("container", "query", "previous_query")
