"""django-q2 entry points. They take a query id, never anything secret."""

from __future__ import annotations

from . import services


def run_query_step(query_id: int) -> str:
    return services.run_query_step(query_id)


def sweep_queries() -> dict[str, int]:
    return services.sweep_queries()
