"""Subscriptions move into the notifications app without touching the database: the rows stay
where they were (same table, same ids), permissions given on them stay given, and migrating
back gives the old app its models again with the same rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from notifications.endpoints import new_secret
from notifications.models import AlertPreference, Delivery, WebhookEndpoint
from sessions_app.models import Account

BEFORE = [("containers_app", "0008_recurring_runs_to_queries"), ("notifications", "0001_one_sweep")]
BEFORE_ENDPOINTS = [
    ("api_app", "0004_webhook_deliveries_are_deliveries"),
    ("notifications", "0003_deliveries"),
]


def migrate(targets: list[tuple[str, str]] | None = None) -> Any:
    """Migrate to the targets (default: the latest); the models' state there."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    ContentType.objects.clear_cache()
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_alert_preferences_move_with_their_rows(alice: Account, django_user_model: Any) -> None:
    old = migrate(BEFORE)
    preference = old.get_model("containers_app", "AlertPreference").objects.create(
        user_id=alice.user_id, channel="off", events=["query.failed"], scope="watched"
    )
    editor = django_user_model.objects.create_user("eddie", is_staff=True)
    editor.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="containers_app", codename="change_alertpreference"
        )
    )

    migrate()

    moved = AlertPreference.objects.get()
    assert (moved.pk, moved.user_id, moved.channel, moved.events, moved.scope) == (
        preference.pk,
        alice.user_id,
        "off",
        ["query.failed"],
        "watched",
    )
    assert AlertPreference._meta.db_table == "containers_app_alertpreference"
    editor = django_user_model.objects.get(pk=editor.pk)
    assert editor.has_perm("notifications.change_alertpreference")

    old = migrate(BEFORE)
    back = old.get_model("containers_app", "AlertPreference").objects.get()
    assert (back.pk, back.channel, back.events) == (preference.pk, "off", ["query.failed"])
    migrate()
    assert AlertPreference.objects.get().pk == preference.pk


@pytest.mark.django_db(transaction=True)
def test_webhook_endpoints_move_with_their_rows_secrets_and_deliveries(
    alice: Account, django_user_model: Any
) -> None:
    old = migrate(BEFORE_ENDPOINTS)
    secret = new_secret()
    endpoint = old.get_model("api_app", "WebhookEndpoint").objects.create(
        user_id=alice.user_id,
        url="https://hooks.example.com/in",
        events=["query.failed"],
        secret=secret,
    )
    delivery = old.get_model("notifications", "Delivery").objects.create(
        channel="webhook",
        endpoint=endpoint,
        event_id="query.failed:1",
        event_type="query.failed",
        body="{}",
    )
    viewer = django_user_model.objects.create_user("vera", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="api_app", codename="view_webhookendpoint")
    )

    migrate()

    moved = WebhookEndpoint.objects.get()
    assert (moved.pk, moved.user_id, moved.url, moved.events) == (
        endpoint.pk,
        alice.user_id,
        "https://hooks.example.com/in",
        ["query.failed"],
    )
    assert moved.secret == secret  # still decrypted with the same key
    assert Delivery.objects.get(pk=delivery.pk).endpoint == moved
    assert list(alice.user.webhook_endpoints.all()) == [moved]
    viewer = django_user_model.objects.get(pk=viewer.pk)
    assert viewer.has_perm("notifications.view_webhookendpoint")

    old = migrate(BEFORE_ENDPOINTS)
    back = old.get_model("notifications", "Delivery").objects.select_related("endpoint").get()
    assert (back.pk, back.endpoint.pk, back.endpoint.secret) == (delivery.pk, endpoint.pk, secret)
    migrate()
    # The delivery log is the moved endpoint's: deleting it takes its deliveries along.
    WebhookEndpoint.objects.get().delete()
    assert not Delivery.objects.exists()
