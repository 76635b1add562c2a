"""django-q2 entry points of the operations side."""

from __future__ import annotations

from django.conf import settings

from containers_app.retention import prune_board
from notifications.retention import prunable as notifications_prunable

from .retention import prune_results as prune


def prune_results() -> str:
    """The daily prune (its schedule is made by migration 0002): RESULTS_RETENTION_DAYS and
    RESULTS_KEEP_LAST, and BOARD_RETENTION_DAYS for the board's records, as they are set when
    it runs; 0 days turns either off."""
    days = settings.RESULTS_RETENTION_DAYS
    if days:
        report = prune(older_than_days=days, keep_last=settings.RESULTS_KEEP_LAST)
        done = (
            f"{report.rows} rows and {report.files} files ({report.file_bytes} bytes) of "
            f"{report.queries} queries older than {days} days"
        )
    else:
        done = "results: off (RESULTS_RETENTION_DAYS=0)"
    board_days = settings.BOARD_RETENTION_DAYS
    if board_days:
        board = prune_board(older_than_days=board_days, first=notifications_prunable)
        parts = ", ".join(f"{rows} {name}" for name, rows in board.tables.items())
        done += f"; board: {parts} older than {board_days} days"
    else:
        done += "; board: off (BOARD_RETENTION_DAYS=0)"
    return done
