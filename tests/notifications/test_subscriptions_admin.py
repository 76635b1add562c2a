"""Subscriptions in the admin, under Notifications: people's alert preferences and their webhook
endpoints, listed and opened, an endpoint's signing secret never shown."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from notifications.endpoints import create_endpoint
from notifications.models import AlertPreference
from sessions_app.models import Account


def test_the_admin_lists_subscriptions_under_notifications(alice: Account, staff: Any) -> None:
    preference = AlertPreference.objects.create(user=alice.user, events=["query.failed"])
    endpoint, secret = create_endpoint(
        user=alice.user, url="https://tms.example.com/hooks", events=["query.failed"]
    )
    client = Client()
    client.force_login(staff)
    index = client.get(reverse("admin:app_list", args=["notifications"])).content.decode()
    assert "Alert preferences" in index and "Webhook endpoints" in index
    for model, pk, shown in (
        ("alertpreference", preference.pk, "alerts of alice"),
        ("webhookendpoint", endpoint.pk, "https://tms.example.com/hooks"),
    ):
        for url in (
            reverse(f"admin:notifications_{model}_changelist"),
            reverse(f"admin:notifications_{model}_change", args=[pk]),
        ):
            response = client.get(url)
            assert response.status_code == 200, url
            html = response.content.decode()
            assert shown in html and secret not in html, url
