from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from ..local_times import terminal_time_text
from ..money import money_words
from ..words import days_left_words, describe_change, due_urgency

register = template.Library()


@register.filter
def history_words(entry: Any) -> str:
    return describe_change(
        {"change": entry.change, "fields": entry.fields}, timezone.get_current_timezone()
    )


@register.filter
def terminal_time(value: Any, terminal: Any) -> str:
    """A slot's time as the terminal's clock reads it, with the zone: "Tue 2026-12-08 07:00 PST"."""
    return terminal_time_text(value, terminal, "%a %Y-%m-%d %H:%M")


register.filter("days_left_text", days_left_words)
register.filter("urgency", due_urgency)
register.filter("dollars", money_words)
