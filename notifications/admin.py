"""Subscriptions in the admin: people's alert preferences."""

from __future__ import annotations

from django.contrib import admin

from .models import AlertPreference


@admin.register(AlertPreference)
class AlertPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "channel", "scope", "lfd_due_days", "updated_at")
    list_filter = ("channel", "scope")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)
