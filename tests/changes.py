"""A run's changes, made as the board makes them: history entries of the account's containers
with the run as their query."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from containers_app.models import Container
from history.models import HistoryEntry
from queries_app.models import Query


def add_change(
    query: Query, container_number: str, change: str, fields: dict[str, Any] | None = None
) -> HistoryEntry:
    container, _ = Container.objects.get_or_create(
        account=query.account, container_number=container_number
    )
    return HistoryEntry.objects.create(
        container=container,
        container_number=container_number,
        query=query,
        observed_at=timezone.now(),
        change=change,
        fields=fields or {},
    )


def add_changes(query: Query, numbers: list[str], change: str) -> None:
    """Many at once (one statement for the containers, one for the entries)."""
    Container.objects.bulk_create(
        [Container(account=query.account, container_number=n) for n in numbers],
        ignore_conflicts=True,
    )
    ids = dict(
        Container.objects.filter(account=query.account, container_number__in=numbers).values_list(
            "container_number", "id"
        )
    )
    now = timezone.now()
    HistoryEntry.objects.bulk_create(
        HistoryEntry(
            container_id=ids[n], container_number=n, query=query, observed_at=now, change=change
        )
        for n in numbers
    )
