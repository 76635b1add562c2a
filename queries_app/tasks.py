"""django-q2 entry points. They take a query id, never anything secret."""

from __future__ import annotations

import json

from sessions_app.models import Account

from . import engine, services


def run_query_step(query_id: int | None = None) -> str:
    """Run steps, starting with this query's if it is free (see `engine.run_queries`)."""
    return engine.run_queries(first=query_id)


def sweep_queries() -> dict[str, int]:
    return engine.sweep_queries()


def start_scheduled_query(account_id: int, kind: str, params_json: str = "{}") -> str:
    """A recurring query's schedule fires: start it (or keep the one already running)."""
    account = Account.objects.get(pk=account_id)
    query, created = services.start_query(
        account=account, kind=kind, params=json.loads(params_json)
    )
    return f"query {query.pk}" + ("" if created else " (already running)")
