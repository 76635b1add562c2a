from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from ..words import days_left_words, describe_change

register = template.Library()


@register.filter
def history_words(entry: Any) -> str:
    return describe_change(
        {"change": entry.change, "fields": entry.fields}, timezone.get_current_timezone()
    )


@register.filter
def days_left_text(left: int | None) -> str:
    return days_left_words(left)


@register.filter
def urgency(left: int | None) -> str:
    if left is None:
        return ""
    if left < 0:
        return "overdue"
    return {0: "today", 1: "tomorrow", 2: "soon"}.get(left, "")
