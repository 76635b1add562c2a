"""The operations page's figures: a fixed number of aggregate queries over a period, whatever
the amount of data (each groups in the database and returns one row per day, kind, account,
endpoint or reason)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import Coalesce, Now, TruncDate
from django.utils import timezone

from queries_app.models import AppointmentCheck, ContainerInfo, Query
from sessions_app.models import Account, SessionEvent

from .health import public_name
from .models import BUCKET_FIELDS, BUCKETS, UpstreamCallStat

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
TOP_ACCOUNTS = 12
TOP_REASONS = 8
NEEDING_SHOWN = 50
# Rows with unknown milestone labels read to name the labels (counted beyond it in SQL).
UNKNOWN_LABEL_ROWS = 1000
TOP_UNKNOWN_LABELS = 10
FAILURE_WINDOW = timedelta(days=7)
CAPTCHA_OUTCOMES = (
    SessionEvent.Kind.CREATED,
    SessionEvent.Kind.REJECTED,
    SessionEvent.Kind.FAILED,
)
QUERY_OUTCOMES = (Query.Status.SUCCEEDED, Query.Status.FAILED, Query.Status.CANCELLED)


@dataclass
class Figures:
    days: list[date]
    captchas_per_day: dict[str, list[int]]
    captchas_per_account: list[tuple[str, int]]
    queries_per_day: dict[str, list[int]]
    login_share_per_day: list[float]
    queries_needing_login: int
    queries_started: int
    latency: list[tuple[str, float, float, int]]  # endpoint, p50, p95, calls
    failure_reasons: list[tuple[str, int]]
    needing_a_person: list[dict[str, Any]]
    needing_a_person_count: int
    captchas_total: int = 0
    # What the upstream answered that the portal could not read, kept and counted for staff.
    unknown_milestone_containers: int = 0
    unknown_milestone_labels: list[tuple[str, int]] = field(default_factory=list)
    unknown_checks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def quantile(q: float, counts: list[int], total: int) -> float:
    """The q-quantile of a histogram (counts per bucket, not cumulative), interpolated within
    its bucket as Prometheus's histogram_quantile does; above the last bound, that bound."""
    if total <= 0:
        return 0.0
    rank, seen, lower = q * total, 0, 0.0
    for bound, count in zip(BUCKETS, counts, strict=True):
        if count and seen + count >= rank:
            return lower + (bound - lower) * (rank - seen) / count
        seen += count
        lower = bound
    return float(BUCKETS[-1])


def _per_day(
    rows: Sequence[Mapping[str, Any]], days: list[date], key: str, names: tuple[str, ...]
) -> dict[str, list[int]]:
    index = {day: i for i, day in enumerate(days)}
    found = {name: [0] * len(days) for name in names}
    for row in rows:
        i = index.get(row["day"])
        if i is not None and row[key] in found:
            found[row[key]][i] += row["n"]
    return found


def operations_figures(*, days: int, now: datetime | None = None) -> Figures:
    now = now or timezone.now()
    zone = timezone.get_current_timezone()
    today = timezone.localtime(now, zone).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    day_list = [first + timedelta(days=i) for i in range(days)]
    day = TruncDate("created_at", tzinfo=zone)

    # 1. Captchas per day, by the outcome of the login they were spent on.
    captcha_rows = list(
        SessionEvent.objects.captcha_spent()
        .since(since)
        .order_by()
        .annotate(day=day)
        .values("day", "kind")
        .annotate(n=Count("id"))
    )
    captchas_per_day = _per_day(captcha_rows, day_list, "kind", tuple(CAPTCHA_OUTCOMES))

    # 2. ... and per account (the most spent first).
    per_account = list(
        SessionEvent.objects.captcha_spent()
        .since(since)
        .order_by()
        .values("account__user__username")
        .annotate(n=Count("id"))
        .order_by("-n", "account__user__username")[:TOP_ACCOUNTS]
    )
    captchas_per_account = [(r["account__user__username"], r["n"]) for r in per_account]

    # 3. Queries per day by outcome (live ones as "running"); 4. the share that needed a
    # login: a captcha spent for the query's account while it ran.
    needed_login = Exists(
        SessionEvent.objects.filter(
            account=OuterRef("account"),
            captcha_spent=True,
            created_at__gte=OuterRef("started_at"),
            created_at__lte=Coalesce(OuterRef("finished_at"), Now()),
        )
    )
    query_rows = list(
        Query.objects.filter(created_at__gte=since)
        .order_by()
        .annotate(day=day, needed=needed_login)
        .values("day", "status")
        .annotate(
            n=Count("id"),
            started=Count("id", filter=Q(started_at__isnull=False)),
            logins=Count("id", filter=Q(needed=True)),
        )
    )
    statuses = (*QUERY_OUTCOMES, "running")
    for row in query_rows:
        if row["status"] in Query.LIVE_STATUSES:
            row["status"] = "running"
    queries_per_day = _per_day(query_rows, day_list, "status", statuses)
    started = _per_day([{**r, "n": r["started"]} for r in query_rows], day_list, "status", statuses)
    logins = _per_day([{**r, "n": r["logins"]} for r in query_rows], day_list, "status", statuses)
    started_per_day = [sum(started[s][i] for s in statuses) for i in range(days)]
    logins_per_day = [sum(logins[s][i] for s in statuses) for i in range(days)]
    share = [
        100 * needed / total if total else 0.0
        for needed, total in zip(logins_per_day, started_per_day, strict=True)
    ]

    # 5. Upstream latency per endpoint over the period, from the hourly histogram rows.
    sums = {name: Sum(name) for name in ("count", *BUCKET_FIELDS)}
    latency = []
    # The histogram's columns, summed under their own names.
    stats: Iterable[Mapping[str, Any]] = (
        UpstreamCallStat.objects.filter(hour__gte=since - timedelta(hours=1))
        .order_by()
        .values("endpoint")
        .annotate(**sums)
        .order_by("endpoint")
    )
    for stat in stats:
        counts = [stat[name] or 0 for name in BUCKET_FIELDS]
        total = stat["count"] or 0
        latency.append(
            (stat["endpoint"], quantile(0.5, counts, total), quantile(0.95, counts, total), total)
        )

    # 6. The most frequent reasons queries failed this week.
    reasons = (
        Query.objects.filter(status=Query.Status.FAILED, finished_at__gte=now - FAILURE_WINDOW)
        .order_by()
        .values("error")
        .annotate(n=Count("id"))
        .order_by("-n", "error")[:TOP_REASONS]
    )
    failure_reasons = [((r["error"] or "(no reason given)").strip(), r["n"]) for r in reasons]

    # 7. Accounts needing a person: what stopped them.
    needing = Account.objects.needing_a_person().select_related("user").order_by("user__username")
    needing_rows = [
        {
            "pk": account.pk,
            "username": account.user.get_username(),
            "state": account.get_credential_state_display(),
            "blocked": account.logins_blocked,
            "reason": account.credential_error if account.logins_blocked else "",
            "appointment_error": account.appointment_error,
            "server": public_name(account.upstream_url) if account.upstream_url else "",
        }
        for account in needing[:NEEDING_SHOWN]
    ]
    needing_count = len(needing_rows)
    if needing_count == NEEDING_SHOWN:
        needing_count = needing.count()
    # 8. Answers not read: timeline labels the portal does not know (kept with the timeline),
    # and appointment checks that said neither "slots" nor "none".
    flagged = ContainerInfo.objects.filter(query__created_at__gte=since).exclude(
        unknown_milestones=[]
    )
    label_rows = list(
        flagged.order_by().values_list("unknown_milestones", flat=True)[:UNKNOWN_LABEL_ROWS]
    )
    flagged_count = len(label_rows)
    if flagged_count == UNKNOWN_LABEL_ROWS:
        flagged_count = flagged.count()
    labels = Counter(label for row in label_rows for label in row)
    unknown_checks = AppointmentCheck.objects.filter(
        query__created_at__gte=since, outcome=AppointmentCheck.Outcome.UNKNOWN
    ).count()
    return Figures(
        days=day_list,
        captchas_per_day=captchas_per_day,
        captchas_per_account=captchas_per_account,
        queries_per_day=queries_per_day,
        login_share_per_day=share,
        queries_needing_login=sum(logins_per_day),
        queries_started=sum(started_per_day),
        latency=latency,
        failure_reasons=failure_reasons,
        needing_a_person=needing_rows,
        needing_a_person_count=needing_count,
        captchas_total=sum(sum(values) for values in captchas_per_day.values()),
        unknown_milestone_containers=flagged_count,
        unknown_milestone_labels=sorted(labels.items(), key=lambda item: (-item[1], item[0]))[
            :TOP_UNKNOWN_LABELS
        ],
        unknown_checks=unknown_checks,
    )
