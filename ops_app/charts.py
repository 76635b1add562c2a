"""Charts as SVG, drawn on the server: no script, no inline style (the Content-Security-
Policy allows neither), colours from classes in ops/ops.css. Each bar carries a <title>
(its exact figure, shown on hover) and each chart an aria-label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

FONT = 12
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 40


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    # A class of ops.css: s0 … s5.
    css: str = "s0"


def nice_ceiling(value: float) -> float:
    """A round number at or above value (1, 2, 2.5, 5 × a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover


def _f(value: float) -> str:
    """A coordinate (format_html escapes its arguments to text first: format them here)."""
    return f"{value:.1f}"


def number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _legend(series: Sequence[Series], y: float) -> SafeString:
    items, x = [], LEFT
    for one in series:
        items.append(
            format_html(
                '<rect class="{}" x="{}" y="{}" width="10" height="10"></rect>'
                '<text x="{}" y="{}">{}</text>',
                one.css,
                x,
                y - 9,
                x + 14,
                y,
                one.name,
            )
        )
        x += 24 + 7 * len(one.name)
    return mark_safe("".join(items))  # noqa: S308 - each item built by format_html


def _empty(label: str, width: int) -> SafeString:
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} 40" width="{}" '
        'height="40"><text class="empty" x="{}" y="24">No data in this period.</text></svg>',
        label,
        width,
        width,
        LEFT,
    )


def column_chart(
    *,
    label: str,
    categories: Sequence[str],
    series: Sequence[Series],
    stacked: bool = True,
    unit: str = "",
    width: int = 720,
    height: int = 220,
    maximum: float | None = None,
) -> SafeString:
    """Vertical bars, one slot per category; the series stacked (or side by side)."""
    totals = [
        sum(one.values[i] for one in series) if stacked else max(one.values[i] for one in series)
        for i in range(len(categories))
    ]
    if not categories or not any(totals):
        return _empty(label, width)
    # Four gridlines apart by a round step.
    top = maximum or 4 * nice_ceiling(max(totals) / 4)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    slot = plot_w / len(categories)
    bar_w = max(slot * 0.7 / (1 if stacked else len(series)), 1)
    parts: list[str] = []
    for tick in range(5):  # gridlines and their values
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}{}</text>',
                LEFT,
                width - RIGHT,
                _f(y),
                _f(y),
                LEFT - 4,
                _f(y + 4),
                number(value),
                unit,
            )
        )
    every = max(1, math.ceil(len(categories) / 12))  # at most a dozen category labels
    for i, category in enumerate(categories):
        x0 = LEFT + slot * i + (slot - bar_w * (1 if stacked else len(series))) / 2
        base = 0.0
        for k, one in enumerate(series):
            value = one.values[i]
            if value <= 0:
                continue
            h = plot_h * min(value, top) / top
            x = x0 if stacked else x0 + k * bar_w
            y = TOP + plot_h - h - (plot_h * base / top if stacked else 0)
            parts.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {} {}{}</title></rect>",
                    one.css,
                    _f(x),
                    _f(y),
                    _f(bar_w),
                    _f(h),
                    category,
                    one.name,
                    number(value),
                    unit,
                )
            )
            if stacked:
                base += value
        if i % every == 0:
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _f(LEFT + slot * (i + 0.5)),
                    _f(TOP + plot_h + 14),
                    category,
                )
            )
    if len(series) > 1:
        parts.append(_legend(series, height - 6))
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" '
        'height="{}">{}</svg>',
        label,
        width,
        height,
        width,
        height,
        mark_safe("".join(parts)),  # noqa: S308 - each part built by format_html
    )


def bar_chart(
    *,
    label: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    width: int = 720,
    label_width: int = 260,
    row: int = 22,
) -> SafeString:
    """Horizontal bars, one row per label, the series side by side within it."""
    if not labels or not any(v for one in series for v in one.values):
        return _empty(label, width)
    top = nice_ceiling(max(v for one in series for v in one.values))
    plot_w = width - label_width - 70
    bar_h = (row - 4) / len(series)
    legend = 22 if len(series) > 1 else 0
    height = TOP + row * len(labels) + legend + 4
    parts: list[str] = []
    for i, text in enumerate(labels):
        y0 = TOP + row * i
        short = text if len(text) <= 42 else text[:41] + "…"
        parts.append(
            format_html(
                '<text class="label" x="{}" y="{}" text-anchor="end"><title>{}</title>{}</text>',
                label_width - 6,
                _f(y0 + row / 2 + 4),
                text,
                short,
            )
        )
        for k, one in enumerate(series):
            value = one.values[i]
            w = plot_w * value / top if value > 0 else 0
            y = y0 + 2 + k * bar_h
            parts.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {} {}{}</title></rect>"
                    '<text class="value" x="{}" y="{}">{}{}</text>',
                    one.css,
                    label_width,
                    _f(y),
                    _f(w),
                    _f(bar_h - 1),
                    text,
                    one.name,
                    number(value),
                    unit,
                    _f(label_width + w + 4),
                    _f(y + bar_h - 3),
                    number(value),
                    unit,
                )
            )
    if legend:
        parts.append(_legend(series, height - 6))
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" '
        'height="{}">{}</svg>',
        label,
        width,
        height,
        width,
        height,
        mark_safe("".join(parts)),  # noqa: S308 - each part built by format_html
    )
