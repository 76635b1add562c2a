"""Pickup figures: what the board's urgency counted before the pickup verdict and what it counts
now, on the demo's data (`make run`: the simulator's sheets of the demo accounts), with money at
risk under an example tariff. Reads the simulator's sheets and applies the portal's own rules
(`containers_app.verdict`, `containers_app.money`); no portal or database needed.

    .venv/bin/python bench/pickup.py [--containers 40] [--seed 0] [--rate 150 --from-day-5 300]

The tariff is an example (every terminal: 150/day for charged days 1–4, 300/day from day 5),
not a real terminal's: the portal has none by default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emodal_portal.settings")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

from containers_app import money  # noqa: E402
from containers_app.verdict import needs_pickup, pickup_verdict  # noqa: E402
from emodal_sim import SimConfig  # noqa: E402
from emodal_sim import data as simdata  # noqa: E402
from queries_app import parsing  # noqa: E402

DEMO_USERNAMES = ["demo-trucking", "demo-trucking-2"]


def figures(username: str, config: SimConfig, tariff: list[money.Rates]) -> dict[str, object]:
    today = config.current_date()
    rows = [parsing.container_fields(raw) for raw in simdata.containers_for(username, config)]
    verdicts = Counter()
    before = Counter()
    after = Counter()
    to_date, per_day = Decimal("0.00"), Decimal("0.00")
    for row in rows:
        verdict = pickup_verdict(
            trade_type=row["trade_type"], status=row["status"], holds=row["holds"]
        ).pickup
        verdicts[str(verdict)] += 1
        lfd = row["last_free_day"]
        left = None if lfd is None else (lfd - today).days
        if left is not None:
            # Before: the last free day alone.
            before["overdue or due today"] += left <= 0
            before["due within 2 days (overdue included)"] += left <= 2
            before["red rows"] += left <= 2
        if not needs_pickup(verdict):
            continue
        after["needing a pickup"] += 1
        if left is None:
            continue
        after["overdue"] += left < 0
        after["due today"] += left == 0
        after["due in 1-2 days"] += 1 <= left <= 2
        after["red rows"] += left <= 2
        owed = money.charges(last_free_day=lfd, today=today, tariffs=tariff)
        if owed is not None:
            to_date += owed.to_date
            per_day += owed.per_day
    return {
        "containers": len(rows),
        "verdicts": dict(sorted(verdicts.items())),
        "before": dict(before),
        "after": dict(after),
        "money at risk": f"{money.money_words(to_date)} so far, +{money.money_words(per_day)}/day",
    }


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/pickup.py", description=__doc__.splitlines()[0])
    p.add_argument("--containers", type=int, default=SimConfig().containers)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", default="150")
    p.add_argument("--from-day-5", default="300")
    args = p.parse_args()
    config = SimConfig(containers=args.containers, seed=args.seed)
    start = config.current_date() - timedelta(days=3650)
    tariff = [money.Rates(start, 0, ((1, Decimal(args.rate)), (5, Decimal(args.from_day_5))))]
    for username in DEMO_USERNAMES:
        print(f"{username} (as of {config.current_date()}):")
        for key, value in figures(username, config, tariff).items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
