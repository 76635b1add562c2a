"""Money at risk: what a container that still needs a pickup has cost so far past its last free
day, and what one more day would cost, by its terminal's tariffs (`Tariff`, `TariffTier`).

Each charged day is priced by the tariff in effect on that day (the latest whose `applies from`
is on or before it), counting that tariff's free days and tiers from the last free day. A
terminal without a tariff, or a day no tariff covers yet, gives no amount at all (None): the
portal never invents one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .models import Tariff
from .verdict import needs_pickup

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Charges:
    to_date: Decimal  # accrued from the day after the free time through today
    per_day: Decimal  # what tomorrow adds if it is still not picked up
    days: int  # charged days so far


@dataclass(frozen=True)
class Rates:
    """One tariff, as the computation needs it."""

    effective_from: date
    free_days: int
    tiers: tuple[tuple[int, Decimal], ...]  # (from day, daily rate), by from day

    def rate(self, charged_day: int) -> Decimal:
        rate = ZERO
        for from_day, daily in self.tiers:
            if from_day <= charged_day:
                rate = daily
        return rate


class Tariffs:
    """Every terminal's tariffs, loaded once for a page, an export or a digest."""

    def __init__(self, by_terminal: dict[int, list[Rates]]) -> None:
        self.by_terminal = by_terminal
        # Charges depend only on the terminal and the two dates: a page or an export of many
        # containers computes each combination once.
        self._known: dict[tuple[int, date, date], Charges | None] = {}

    @classmethod
    def load(cls, terminal_ids: Iterable[int] | None = None) -> Tariffs:
        tariffs = Tariff.objects.prefetch_related("tiers").order_by("effective_from")
        if terminal_ids is not None:
            tariffs = tariffs.filter(terminal_id__in=list(terminal_ids))
        by_terminal: dict[int, list[Rates]] = defaultdict(list)
        for tariff in tariffs:
            tiers = tuple(sorted((t.from_day, t.daily_rate) for t in tariff.tiers.all()))
            by_terminal[tariff.terminal_id].append(
                Rates(tariff.effective_from, tariff.free_days, tiers)
            )
        return cls(dict(by_terminal))

    def has_tariff(self, terminal_id: int | None) -> bool:
        return terminal_id is not None and terminal_id in self.by_terminal

    def charges(self, container: Any, today: date) -> Charges | None:
        """A container's charges today; None when it needs no pickup, is gone from the list,
        has no last free day, or its terminal has no tariff for the days that count."""
        if container.gone_at is not None:
            return None
        return self.charges_of(
            pickup=container.pickup,
            last_free_day=container.last_free_day,
            terminal_id=container.terminal_id,
            today=today,
        )

    def charges_of(
        self, *, pickup: str, last_free_day: date | None, terminal_id: int | None, today: date
    ) -> Charges | None:
        if not needs_pickup(pickup) or last_free_day is None or terminal_id is None:
            return None
        rates = self.by_terminal.get(terminal_id)
        if not rates:
            return None
        key = (terminal_id, last_free_day, today)
        if key not in self._known:
            self._known[key] = charges(last_free_day=last_free_day, today=today, tariffs=rates)
        return self._known[key]


def in_effect(tariffs: list[Rates], day: date) -> Rates | None:
    found = None
    for rates in tariffs:  # by effective_from
        if rates.effective_from <= day:
            found = rates
    return found


def day_cost(tariffs: list[Rates], last_free_day: date, day: date) -> Decimal | None:
    rates = in_effect(tariffs, day)
    if rates is None:
        return None
    charged_day = (day - last_free_day).days - rates.free_days
    return rates.rate(charged_day) if charged_day >= 1 else ZERO


def charges(*, last_free_day: date, today: date, tariffs: list[Rates]) -> Charges | None:
    """Charges of a container whose last free day is `last_free_day`, as of the end of `today`
    (today's charge included: it is owed even if the container leaves today)."""
    total, days = ZERO, 0
    day = last_free_day + timedelta(days=1)
    while day <= today:
        cost = day_cost(tariffs, last_free_day, day)
        if cost is None:
            return None  # a day no tariff covers: no amount rather than a wrong one
        total += cost
        days += 1 if cost > 0 else 0
        day += timedelta(days=1)
    per_day = day_cost(tariffs, last_free_day, today + timedelta(days=1))
    if per_day is None:
        return None
    return Charges(to_date=total, per_day=per_day, days=days)


def money_words(amount: Decimal | None) -> str:
    """$1,234.50; "no tariff" for None."""
    return "no tariff" if amount is None else f"${amount:,.2f}"
