"""Small presentation helpers for the results pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template
from django.template.context import RequestContext

from queries_app.registry import UnknownKind, get_kind
from queries_app.tables import change_details, change_text

from ..progress import RunProgress
from ..progress import run_progress as progress_of

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """'45 s', '3 min 05 s', '2 h 07 min'."""
    if value is None:
        return ""
    seconds = max(int(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


@register.filter
def step_label(query: Any) -> str:
    """What the query's next step does, in the words of its kind."""
    try:
        return get_kind(query.kind).step_label(query.step)
    except UnknownKind:
        return query.step.replace("_", " ")


def _labels(kind: str) -> dict[str, str]:
    try:
        fields = get_kind(kind).params.base_fields
    except UnknownKind:
        return {}
    return {name: str(field.label or name.replace("_", " ")) for name, field in fields.items()}


@register.filter
def param_items(query: Any) -> list[tuple[str, str]]:
    """A query's parameters as (label, text), lists joined, empty ones left out."""
    labels = _labels(query.kind)
    items = []
    for name, value in (query.params or {}).items():
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        if text:
            items.append((labels.get(name, name.replace("_", " ")), text))
    return items


@register.filter
def param_summary(query: Any) -> str:
    """One line for the list page; long container lists are counted, not spelled out."""
    labels = _labels(query.kind)
    parts = []
    for name, value in (query.params or {}).items():
        if isinstance(value, list):
            if value:
                label = labels.get(name, name).lower()
                parts.append(f"{len(value)} {label}" if len(value) > 3 else ", ".join(value))
        elif value:
            parts.append(str(value))
    return " · ".join(parts)


@register.filter
def yes_no(value: bool | None) -> str:
    if value is None:
        return ""
    return "Yes" if value else "No"


@register.simple_tag(takes_context=True)
def querystring_param(context: RequestContext, name: str, value: Any) -> str:
    """The current query string with one parameter set: `{% querystring %}` for a parameter
    whose name is itself a variable (each result table has its own page parameter)."""
    params = context.request.GET.copy()
    params[name] = value
    return f"?{params.urlencode()}"


@register.filter(name="change_details")
def change_details_filter(fields: dict[str, Any] | None) -> str:
    return change_details(fields)


@register.filter
def change_words(kind: str, fields: dict[str, Any] | None) -> str:
    return change_text(kind, fields)


@register.filter
def run_progress(query: Any) -> RunProgress:
    return progress_of(query)
