from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from ..money import money_words
from ..words import days_left_words, describe_change, due_urgency

register = template.Library()


@register.filter
def history_words(entry: Any) -> str:
    return describe_change(
        {"change": entry.change, "fields": entry.fields}, timezone.get_current_timezone()
    )


register.filter("days_left_text", days_left_words)
register.filter("urgency", due_urgency)
register.filter("dollars", money_words)
