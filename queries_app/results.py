"""Storing what the upstream produced: typed rows in one statement per batch, the upstream's
files, and the terminal codes sheets name. Shared by the kinds' steps."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.core.files.base import ContentFile
from django.db import connections, models, router, transaction
from django.utils import timezone

from . import parsing
from .engine.steps import QueryFailed
from .models import ContainerInfo, ContainerRow, Query, QueryFile, Terminal

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def save_file(query: Query, kind: str, name: str, content: bytes, content_type: str) -> QueryFile:
    QueryFile.objects.filter(query=query, name=name).delete()
    stored = QueryFile(
        query=query, kind=kind, name=name, size=len(content), content_type=content_type
    )
    stored.file.save(f"{query.pk}-{name}", ContentFile(content), save=False)
    stored.save()
    return stored


def container_rows(
    content: bytes, *, refused: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The containers sheet's rows as ContainerRow field values, by container number (the
    first row of a number counts). A row whose number is not a container number is left out
    and its cell, as written, added to `refused`. A file that cannot be read fails the query."""
    rows: dict[str, dict[str, Any]] = {}
    try:
        for raw in parsing.sheet_rows(io.BytesIO(content)):
            fields = parsing.container_fields(raw)
            if not fields["container_number"]:
                continue
            if not parsing.is_container_number(fields["container_number"]):
                if refused is not None:
                    refused.append(raw.get("Container #", ""))
                continue
            rows.setdefault(fields["container_number"], fields)
    except parsing.SheetError as exc:
        raise QueryFailed(f"The containers sheet cannot be read: {exc}.") from None
    return rows


def store_container_rows(query: Query, rows: dict[str, dict[str, Any]], content: bytes) -> None:
    """Replace the query's container rows and sheet file, all or nothing."""
    with transaction.atomic():
        ContainerRow.objects.filter(query=query).delete()
        insert_rows(ContainerRow, ({"query": query.pk, **fields} for fields in rows.values()))
        save_file(query, QueryFile.Kind.CONTAINERS_SHEET, "containers.xlsx", content, XLSX)


# Fields whose Python value (str, bool or None, a primary key) is already what every database
# driver takes: get_db_prep_save would hand it back unchanged, at a microsecond a call.
_AS_IS = {"CharField", "TextField", "BooleanField", "ForeignKey"}


def insert_rows(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> None:
    """INSERT rows given as {field name: value} (a foreign key by its id) with one statement
    run for each row (executemany), for every field but the primary key. bulk_create builds a
    model instance per row and prepares every value through its field; on SQLite it also cuts
    the rows into INSERTs of 999 parameters. Text longer than its column is cut to fit, as
    PostgreSQL would otherwise refuse it (the row's raw values keep it whole). No pre_save:
    not for models with auto_now or similar fields."""
    connection = connections[router.db_for_write(model)]
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    plan = [
        (
            field.name,
            field.max_length if field.get_internal_type() == "CharField" else None,
            None if field.get_internal_type() in _AS_IS else field.get_db_prep_save,
        )
        for field in fields
    ]
    params = []
    for row in rows:
        values = []
        for name, width, prepare in plan:
            value = row[name]
            if width is not None and value is not None and len(value) > width:
                value = value[:width]
            elif prepare is not None:
                value = prepare(value, connection)
            values.append(value)
        params.append(values)
    if not params:
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column or field.attname) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Only names from the model's options and placeholders go into the text.
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


TERMINAL_FIELDS = ("origin", "destination", "current_location")


def terminal_codes(rows: dict[str, dict[str, Any]]) -> set[str]:
    """The terminal codes a sheet names (masked cells are no code)."""
    return {
        code
        for fields in rows.values()
        for code in (fields[name] for name in TERMINAL_FIELDS)
        if code and not parsing.is_hidden(code)
    }


def note_terminal_codes(codes: set[str]) -> None:
    """Record when sheets named these codes; a code never seen before is added with no name,
    so that staff see it in the admin and can name it."""
    if not codes:
        return
    now = timezone.now()
    Terminal.objects.bulk_create(
        [Terminal(code=code[:20], first_seen_at=now, last_seen_at=now) for code in codes],
        ignore_conflicts=True,
    )
    Terminal.objects.filter(code__in=codes).update(last_seen_at=now)
    Terminal.objects.filter(code__in=codes, first_seen_at__isnull=True).update(first_seen_at=now)


def write_infos(query: Query, infos: list[ContainerInfo]) -> Callable[[], None]:
    """A write that replaces these containers' details on the query."""

    def write() -> None:
        numbers = [info.container_number for info in infos]
        ContainerInfo.objects.filter(query=query, container_number__in=numbers).delete()
        ContainerInfo.objects.bulk_create(infos, batch_size=1000)

    return write
