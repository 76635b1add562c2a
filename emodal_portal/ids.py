"""Database ids given as text — a query parameter (`?account=`), a part of a path — read as
bounded whole numbers. An id no row can have (a 23-digit number) is refused where it is read:
handed to the database it raises (SQLite's OverflowError, PostgreSQL's DataError) instead of
finding nothing."""

from __future__ import annotations

from typing import Any

from django.urls import register_converter

# The largest id a 64-bit key holds (BigAutoField on PostgreSQL, SQLite's INTEGER).
MAX_ID = 2**63 - 1
MAX_DIGITS = len(str(MAX_ID))


def parse_id(value: Any) -> int | None:
    """The id `value` names (ASCII digits, 1 to MAX_ID), or None."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


def id_error(name: str, value: Any) -> str:
    shown = str(value)[:24] + ("…" if len(str(value)) > 24 else "")
    return f"“{shown}” is not an id ({name}: a whole number from 1 to {MAX_ID})."


class IdConverter:
    """`<id:pk>` in a path: digits naming an id that can exist. Anything else does not match
    the path (a 404; the API says which part is wrong, see api_app.errors)."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(value)
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


register_converter(IdConverter, "id")
