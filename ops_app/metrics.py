"""GET /metrics: the Prometheus text format, for a bearer of METRICS_TOKEN only.

Two parts. django-prometheus's HTTP and database figures are kept by each process (in
memory, or in PROMETHEUS_MULTIPROC_DIR when set — `make serve` sets it for gunicorn — so
that any worker answers for all of one host's workers). The portal's own figures are read from
the database at scrape time by `PortalCollector`: every web and worker process on every host
writes the rows they come from, so whichever process answers gives the totals.
"""

from __future__ import annotations

import os
import secrets
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import prometheus_client
from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from queries_app.models import Query
from sessions_app.models import Account, SessionEvent, UpstreamBreaker

from .health import check_queue, public_name
from .models import BUCKET_FIELDS, BUCKETS, LatencyHistogram, StepStat, UpstreamCallStat


def _histogram(
    name: str, documentation: str, model: type[LatencyHistogram], labels: list[str]
) -> HistogramMetricFamily:
    """All hours of a histogram model added up, one series per label set (one query)."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    sums = {field: Sum(field) for field in ("count", "sum_seconds", *BUCKET_FIELDS)}
    for row in model._default_manager.order_by().values(*labels).annotate(**sums).order_by(*labels):
        cumulative, buckets = 0, []
        for bound, field in zip(BUCKETS, BUCKET_FIELDS, strict=True):
            cumulative += row[field] or 0
            buckets.append((f"{bound:g}", cumulative))
        buckets.append(("+Inf", row["count"] or 0))
        family.add_metric([row[label] for label in labels], buckets, row["sum_seconds"] or 0.0)
    return family


def _server_name(url: str) -> str:
    return public_name(url or settings.EMODAL_API_URLS[0])


class PortalCollector:
    """The portal's figures, from the database (see the module's docstring)."""

    def collect(self) -> Iterator[Metric]:
        captchas = CounterMetricFamily(
            "emodal_captcha_solves",
            "Captcha solves spent, by the outcome of the login they were spent on "
            "(created, rejected, failed).",
            labels=["outcome"],
        )
        for row in (
            SessionEvent.objects.captcha_spent()
            .order_by()
            .values("kind")
            .annotate(n=Count("id"))
            .order_by("kind")
        ):
            captchas.add_metric([row["kind"]], row["n"])
        yield captchas

        events = CounterMetricFamily(
            "emodal_session_events",
            "Session events by kind: reused_stored, reused_upstream and created say how a "
            "session was obtained; the others how one ended or failed.",
            labels=["kind"],
        )
        for row in (
            SessionEvent.objects.order_by().values("kind").annotate(n=Count("id")).order_by("kind")
        ):
            events.add_metric([row["kind"]], row["n"])
        yield events

        live = GaugeMetricFamily(
            "emodal_live_sessions",
            "Accounts holding an upstream session, per server.",
            labels=["server"],
        )
        uses = GaugeMetricFamily(
            "emodal_session_uses",
            "Calls made with the sessions held now (stored-session reuses; falls when a "
            "session is replaced), per server.",
            labels=["server"],
        )
        per_server: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for held in (
            Account.objects.with_session()
            .order_by()
            .values("upstream_url")
            .annotate(n=Count("id"), uses=Sum("session_uses"))
        ):
            figures = per_server[_server_name(held["upstream_url"])]
            figures[0] += held["n"]
            figures[1] += held["uses"] or 0
        for url in settings.EMODAL_API_URLS:
            per_server.setdefault(_server_name(url), [0, 0])
        for server, (count, total) in sorted(per_server.items()):
            live.add_metric([server], count)
            uses.add_metric([server], total)
        yield live
        yield uses

        yield _histogram(
            "emodal_upstream_call_duration_seconds",
            "Upstream calls by server, endpoint and outcome (ok, or the error's class).",
            UpstreamCallStat,
            ["server", "endpoint", "outcome"],
        )

        finished = CounterMetricFamily(
            "emodal_queries_finished",
            "Queries ended, by kind and final status (succeeded, failed, cancelled).",
            labels=["kind", "status"],
        )
        in_flight = GaugeMetricFamily(
            "emodal_queries_live",
            "Queries pending or running, by kind and status.",
            labels=["kind", "status"],
        )
        for row in (
            Query.objects.order_by()
            .values("kind", "status")
            .annotate(n=Count("id"))
            .order_by("kind", "status")
        ):
            family = in_flight if row["status"] in Query.LIVE_STATUSES else finished
            family.add_metric([row["kind"], row["status"]], row["n"])
        yield finished
        yield in_flight

        yield _histogram(
            "emodal_query_step_duration_seconds",
            "Query steps by kind, step and outcome (done, retry, waiting, failed, cancelled, "
            "claim lost).",
            StepStat,
            ["kind", "step", "outcome"],
        )

        queue = check_queue()
        yield GaugeMetricFamily(
            "emodal_task_queue_depth", "Tasks waiting in the broker's queue.", value=queue["depth"]
        )
        if "orm" in settings.Q_CLUSTER:  # the Redis broker cannot tell a task's age
            yield GaugeMetricFamily(
                "emodal_task_queue_oldest_age_seconds",
                "Age of the oldest task waiting in the queue (0: none waits).",
                value=queue["oldest_age_seconds"] or 0,
            )

        state = GaugeMetricFamily(
            "emodal_upstream_breaker_state",
            "Each server's circuit breaker: 1 for the state it is in.",
            labels=["server", "state"],
        )
        failures = GaugeMetricFamily(
            "emodal_upstream_breaker_failures",
            "Transient failures in a row counted by each server's breaker.",
            labels=["server"],
        )
        breakers = {
            row.server: row for row in UpstreamBreaker.objects.only("server", "state", "failures")
        }
        for url in sorted(set(settings.EMODAL_API_URLS) | set(breakers)):
            breaker = breakers.get(url)
            current = breaker.state if breaker else UpstreamBreaker.State.CLOSED
            for choice in UpstreamBreaker.State.values:
                state.add_metric([public_name(url), choice], 1 if choice == current else 0)
            failures.add_metric([public_name(url)], breaker.failures if breaker else 0)
        yield state
        yield failures


def _process_registry() -> Any:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def render() -> bytes:
    portal = CollectorRegistry(auto_describe=False)
    portal.register(PortalCollector())
    return prometheus_client.generate_latest(_process_registry()) + (
        prometheus_client.generate_latest(portal)
    )


def bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode(), token.encode()
    )


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off.")
    if not bearer_matches(request, token):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(render(), content_type=prometheus_client.CONTENT_TYPE_LATEST)
