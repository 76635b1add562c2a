"""django-q2 entry points of the operations side."""

from __future__ import annotations

from django.conf import settings

from .retention import prune_results as prune


def prune_results() -> str:
    """The daily prune (its schedule is made by migration 0002): RESULTS_RETENTION_DAYS and
    RESULTS_KEEP_LAST as they are set when it runs; 0 days turns it off."""
    days = settings.RESULTS_RETENTION_DAYS
    if not days:
        return "off (RESULTS_RETENTION_DAYS=0)"
    report = prune(older_than_days=days, keep_last=settings.RESULTS_KEEP_LAST)
    return (
        f"{report.rows} rows and {report.files} files ({report.file_bytes} bytes) of "
        f"{report.queries} queries older than {days} days"
    )
