from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext

from .models import ApiToken
from .tokens import revoke_token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Read-only (a token is made by its owner, shown once): staff can see and revoke."""

    list_display = ["name", "user", "hint", "state", "created_at", "last_used_at", "expires_at"]
    list_filter = ["revoked_at", "expires_at", "created_at"]
    list_select_related = ["user"]
    search_fields = ["name", "user__username", "hint"]
    readonly_fields = [
        "user",
        "name",
        "hint",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    exclude = ["key_hash"]
    actions = ["revoke"]

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.get_state_display()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = sum(revoke_token(token=token) for token in queryset)
        self.message_user(
            request,
            ngettext("%(n)d token revoked.", "%(n)d tokens revoked.", count) % {"n": count},
        )
