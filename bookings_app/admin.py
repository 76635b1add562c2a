"""Staff see every account's bookings and settle the ones E-Modal left open (outcome unknown,
unverified, not confirmed) after looking in E-Modal. Nothing here sends a booking: a booking is
made only by a person confirming a slot on its page or through the API."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from . import verdicts
from .models import Booking


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "container_number",
        "account",
        "state",
        "slot",
        "requested_by",
        "created_at",
        "sent_at",
        "appointment_number",
    )
    list_filter = ("state", "created_at")
    search_fields = ("container_number", "slot", "appointment_number", "account__emodal_username")
    list_select_related = ("account__user", "requested_by")
    actions = ("settle_booked", "settle_not_booked")
    readonly_fields = [f.name for f in Booking._meta.fields] + ["page", "sheet_link"]
    fields = tuple(readonly_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Booking | None = None) -> bool:
        return False

    @admin.display(description="Page")
    def page(self, booking: Booking) -> str:
        return format_html(
            '<a href="{}">the booking\'s page</a>', reverse("bookings:detail", args=[booking.pk])
        )

    @admin.display(description="Appointments sheet read")
    def sheet_link(self, booking: Booking) -> str:
        if booking.sheet is None:
            return "—"
        url = reverse("queries:file", args=[booking.sheet.query_id, booking.sheet.pk])
        return format_html('<a href="{}">{}</a>', url, booking.sheet.name)

    def _settle(self, request: HttpRequest, queryset: QuerySet, *, booked: bool) -> None:
        settled = sum(
            verdicts.settle_booking(booking=booking, user=request.user, booked=booked)
            for booking in queryset
        )
        skipped = queryset.count() - settled
        word = "booked" if booked else "not booked"
        self.message_user(
            request,
            ngettext("%(n)d booking marked %(word)s.", "%(n)d bookings marked %(word)s.", settled)
            % {"n": settled, "word": word},
            messages.SUCCESS if settled else messages.WARNING,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(n)d booking left as it was (only unknown, unverified or not confirmed "
                    "ones are settled).",
                    "%(n)d bookings left as they were (only unknown, unverified or not "
                    "confirmed ones are settled).",
                    skipped,
                )
                % {"n": skipped},
                messages.WARNING,
            )

    @admin.action(description="Settle: seen in E-Modal (booked)", permissions=["change"])
    def settle_booked(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._settle(request, queryset, booked=True)

    @admin.action(description="Settle: not in E-Modal (not booked)", permissions=["change"])
    def settle_not_booked(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._settle(request, queryset, booked=False)
