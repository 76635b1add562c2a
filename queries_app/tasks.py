"""django-q2 entry points. They take a query id, never anything secret."""

from __future__ import annotations

from . import engine, recurring


def run_query_step(query_id: int | None = None) -> str:
    """Run steps, starting with this query's if it is free (see `engine.run_queries`)."""
    return engine.run_queries(first=query_id)


def sweep_queries() -> dict[str, int]:
    return engine.sweep_queries()


def run_recurring_query(run_id: int) -> str:
    """A recurring run's schedule fired."""
    return recurring.fire(run_id)
