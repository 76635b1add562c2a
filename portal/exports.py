"""CSV and XLSX files of a containers table: the rows and cells the page shows, all pages.

Spreadsheet programs run a cell that starts like a formula, and container data comes from
outside (tags, locations are typed by other people), so such text is defused with a leading
apostrophe in both formats. Numbers are written as numbers (a CSV's `-5` days left sorts as a
number): only text is defused.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Protocol

from django.core.exceptions import FieldDoesNotExist
from django.db.models import DateTimeField
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet


def cell_text(value: Any, zone: tzinfo) -> str:
    """How a value reads in a table cell and in a CSV file."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return timezone.localtime(value, zone).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


class ExportTable(Protocol):
    """What an export reads of a table: its rows, its columns (a label, `read(row)`), and the
    cells of a row as the page shows them."""

    rows: Any

    @property
    def columns(self) -> Sequence[Any]: ...

    def cells(self, row: Any, zone: tzinfo) -> list[str]: ...


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK_SIZE = 2000

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def neutralise(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_lines(table: ExportTable, zone: tzinfo) -> Iterator[str]:
    # Streamed after the view has returned: the zone is passed in, not read from the
    # request's active one.
    writer = csv.writer(_Echo())
    columns = list(table.columns)
    yield writer.writerow([column.label for column in columns])
    for row in table.rows.iterator(chunk_size=CHUNK_SIZE):
        yield writer.writerow([csv_cell(column.read(row), zone) for column in columns])


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def csv_cell(value: Any, zone: tzinfo) -> str:
    """A value as the page shows it; a number as itself, any text defused."""
    text = cell_text(value, zone)
    return text if is_number(value) else neutralise(text)


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: Any, zone: tzinfo) -> Any:
    """Dates, times and amounts stay typed (sortable in the spreadsheet) and are formatted
    as the page shows them; text is defused."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return cell_text(value, zone)
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, timezone.localtime(value, zone).replace(tzinfo=None))
        cell.number_format = "yyyy-mm-dd hh:mm"
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "yyyy-mm-dd"
        return cell
    if isinstance(value, Decimal):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "0.00"
        return cell
    if isinstance(value, int):
        return value
    return neutralise(str(value))


def time_columns(table: ExportTable) -> set[str]:
    """The columns holding moments (model fields of date and time): their header names the zone."""
    model = getattr(table.rows, "model", None)
    if model is None:
        return set()
    names = set()
    for column in table.columns:
        try:
            field = model._meta.get_field(column.key)
        except FieldDoesNotExist:
            continue
        if isinstance(field, DateTimeField):
            names.add(column.key)
    return names


def xlsx_width(label: str) -> float:
    """Wide enough for the header and a date and time, not wider than a long name needs."""
    return float(min(max(len(label) + 3, 12), 40))


def xlsx_bytes(table: ExportTable, zone: tzinfo) -> bytes:
    """One sheet: a frozen header row naming the zone of its times, an auto-filter over every
    column, and widths to read by."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Containers")
    columns = list(table.columns)
    timed = time_columns(table)
    labels = [f"{c.label} ({zone})" if c.key in timed else c.label for c in columns]
    # Write-only sheets take their view, widths and filter before the first row.
    sheet.freeze_panes = "A2"
    for index, label in enumerate(labels, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = xlsx_width(label)
    sheet.append(labels)
    count = 0
    for row in table.rows.iterator(chunk_size=CHUNK_SIZE):
        sheet.append([_xlsx_cell(sheet, column.read(row), zone) for column in columns])
        count += 1
    if columns:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def export_response(table: ExportTable, zone: tzinfo, fmt: str, filename: str) -> HttpResponseBase:
    """The table as a download: CSV streamed, XLSX built in memory."""
    disposition = f'attachment; filename="{filename}"'
    if fmt == "csv":
        return StreamingHttpResponse(
            csv_lines(table, zone),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": disposition},
        )
    return HttpResponse(
        xlsx_bytes(table, zone),
        content_type=XLSX_CONTENT_TYPE,
        headers={"Content-Disposition": disposition},
    )
