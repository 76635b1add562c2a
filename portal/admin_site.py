"""The admin site: staff land on what they use most — E-Modal accounts, queries and the
board — before Django's own and the other models."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

# Apps listed first on the admin index, in this order, each with its main model first.
FIRST = {"sessions_app": "account", "queries_app": "query", "containers_app": "container"}


class PortalAdminSite(admin.AdminSite):
    site_header = "E-Modal Portal"
    site_title = "E-Modal Portal"
    index_title = "Administration"
    index_template = "admin/portal_index.html"

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        order = list(FIRST)
        for app in apps:
            main = FIRST.get(app["app_label"])
            app["models"].sort(key=lambda model: model["object_name"].lower() != main)
        return sorted(
            apps,
            key=lambda app: order.index(app["app_label"]) if app["app_label"] in FIRST else 99,
        )
