"""Delete old queries' results (rows and files) in short batches.

    manage.py prune_results --older-than 30 [--keep-last 3] [--board-older-than 180] [--dry-run]

Keeps every Query row, each account's latest successful query of each kind, the --keep-last
most recent of each account and kind, and live queries (see ops_app/retention.py). Prints
rows and bytes freed per table; bytes are estimated from each table's average row size.
Then the board's records older than --board-older-than days (BOARD_RETENTION_DAYS by default;
0 skips them): sent alerts, events (notifications/retention.py), history, containers long gone
(containers_app/retention.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from containers_app.retention import BoardPruneReport, prune_board
from notifications.retention import prunable as notifications_prunable
from ops_app.retention import BATCH_SIZE, PruneReport, prune_results


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a whole number.") from None
    if value < 0:
        raise CommandError(f"{value} is negative: give 0 or more.")
    return value


def human_bytes(size: int | None) -> str:
    if size is None:
        return "size unknown"
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"  # pragma: no cover


class Command(BaseCommand):
    help = "Delete the result rows and files of queries older than a number of days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            dest="days",
            metavar="DAYS",
            required=True,
            help="Prune the results of queries created more than this many days ago.",
        )
        parser.add_argument(
            "--keep-last",
            metavar="N",
            default="0",
            help="Also keep the N most recent queries of each account and kind (default 0; "
            "the latest successful one is always kept).",
        )
        parser.add_argument(
            "--batch-size",
            metavar="ROWS",
            default=str(BATCH_SIZE),
            help=f"Rows deleted per transaction (default {BATCH_SIZE}).",
        )
        parser.add_argument(
            "--board-older-than",
            dest="board_days",
            metavar="DAYS",
            default=None,
            help="Also prune the board's alerts, events, history and long-gone containers "
            "older than this many days (default BOARD_RETENTION_DAYS; 0 skips them).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = _non_negative(options["days"])
        keep_last = _non_negative(options["keep_last"])
        batch_size = _non_negative(options["batch_size"])
        if not batch_size:
            raise CommandError("--batch-size must be 1 or more.")
        verbosity = options["verbosity"]
        board_days = (
            settings.BOARD_RETENTION_DAYS
            if options["board_days"] is None
            else _non_negative(options["board_days"])
        )

        def progress(table: str, rows: int) -> None:
            if verbosity >= 2:
                self.stdout.write(f"  {table}: {rows} rows deleted")

        report = prune_results(
            older_than_days=days,
            keep_last=keep_last,
            dry_run=options["dry_run"],
            batch_size=batch_size,
            on_batch=progress,
        )
        self.print_report(report, verbosity)
        if board_days:
            board = prune_board(
                older_than_days=board_days,
                dry_run=options["dry_run"],
                batch_size=batch_size,
                on_batch=progress,
                first=notifications_prunable,
            )
            self.print_board(board, verbosity)

    def print_board(self, report: BoardPruneReport, verbosity: int) -> None:
        if verbosity < 1:
            return
        verb = "Would delete" if report.dry_run else "Deleted"
        self.stdout.write(
            f"{verb} the board's records from before "
            f"{timezone.localtime(report.cutoff):%Y-%m-%d %H:%M %Z}:"
        )
        for name, rows in report.tables.items():
            self.stdout.write(f"  {name:<32} {rows:>10} rows")
        self.stdout.write(self.style.SUCCESS(f"{verb} {report.rows} rows of the board."))

    def print_report(self, report: PruneReport, verbosity: int) -> None:
        if verbosity < 1:
            return
        verb = "Would free" if report.dry_run else "Freed"
        self.stdout.write(
            f"{verb}: results of {report.queries} queries created before "
            f"{timezone.localtime(report.cutoff):%Y-%m-%d %H:%M %Z}"
        )
        total_bytes = 0
        known = True
        for table, figures in report.tables.items():
            self.stdout.write(
                f"  {table:<32} {figures.rows:>10} rows  {human_bytes(figures.bytes):>12}"
            )
            if figures.bytes is None:
                known = False
            else:
                total_bytes += figures.bytes
        self.stdout.write(
            f"  {'files':<32} {report.files:>10} files {human_bytes(report.file_bytes):>12}"
        )
        total = human_bytes(total_bytes + report.file_bytes) if known else "size unknown"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} {report.rows} rows and {report.files} files ({total}).")
        )
        if not report.dry_run and verbosity >= 2:
            self.stdout.write(
                f"{report.batches} batches; the longest took {report.longest_batch_seconds:.3f} s."
            )
