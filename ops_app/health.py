"""`/healthz`: is the portal able to do its job? JSON, 200 when every essential check passes,
503 otherwise; open to load balancers and monitors, so it names no secret (no credentials,
session ids, keys, or user data — upstream servers by host and port only). Anonymous callers
get the verdict alone; the details (each check, each server's error, queue figures) go to
staff and to callers bearing HEALTHZ_TOKEN. What each upstream server answered is kept in the
cache (shared by all processes) for HEALTHZ_CACHE_SECONDS, so that calling /healthz often
does not mean calling the upstream as often.

Essential: the database, the cache, a live task cluster (django-q2 `Stat`), and at least one
upstream server configured, every one reachable (`GET /health` with a short timeout) with its
circuit breaker not open. The task queue (depth, age of the oldest waiting task where the
broker can tell) is reported without failing the check: a deep queue is load, not an outage.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.status import Stat

from sessions_app.models import UpstreamBreaker
from sessions_app.upstream import EModalClient, UpstreamError, breaker_states

Check = dict[str, Any]


def _guarded(check: Callable[[], Check]) -> Check:
    """Run a check; an exception is a failed check named by its type (its text could
    quote a connection string)."""
    started = time.monotonic()
    try:
        result = check()
    except Exception as exc:
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.monotonic() - started) * 1000)
    return result


def check_database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def check_cache() -> Check:
    key, value = f"healthz:{secrets.token_hex(8)}", secrets.token_hex(8)
    cache.set(key, value, 30)
    ok = cache.get(key) == value
    cache.delete(key)
    return {"ok": ok}


def check_cluster() -> Check:
    # A stopped cluster's statistics linger in the cache for a while: only a cluster that is
    # working or idle counts as alive.
    clusters = [
        {"status": str(stat.status), "workers": len(stat.workers or [])} for stat in Stat.get_all()
    ]
    alive = [c for c in clusters if c["status"] in (str(Conf.WORKING), str(Conf.IDLE))]
    return {"ok": bool(alive), "alive": len(alive), "clusters": clusters}


def check_queue() -> Check:
    """Depth of the queue; with the ORM broker also the age of the oldest waiting task. And
    the delivery cluster's queue (webhooks, alert e-mails): deep when no delivery cluster
    runs."""
    broker = get_broker()
    result: Check = {
        "ok": True,
        "depth": broker.queue_size() or 0,
        "oldest_age_seconds": None,
        "deliveries_depth": get_broker(settings.DELIVERY_CLUSTER).queue_size() or 0,
    }
    if "orm" in settings.Q_CLUSTER:
        now = timezone.now()
        oldest = (
            OrmQ.objects.filter(key=broker.list_key, lock__lte=now)
            .order_by("lock")
            .values_list("lock", flat=True)
            .first()
        )
        if oldest is not None:
            result["oldest_age_seconds"] = round((now - oldest).total_seconds(), 1)
    return result


def public_name(url: str) -> str:
    """A server as scheme://host:port — never a user, password or path from its URL."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def ask_upstream(url: str) -> Check:
    """What the server's /health says, as recently as HEALTHZ_CACHE_SECONDS allows."""
    seconds = settings.HEALTHZ_CACHE_SECONDS
    key = "healthz:upstream:" + hashlib.sha256(url.encode()).hexdigest()
    if seconds > 0:
        with contextlib.suppress(Exception):  # a failing cache is the cache check's business
            cached = cache.get(key)
            if cached is not None:
                return cached
    client = EModalClient(url, connect_timeout=settings.HEALTHZ_UPSTREAM_TIMEOUT)
    try:
        report = client.health(timeout=settings.HEALTHZ_UPSTREAM_TIMEOUT)
    except UpstreamError as exc:
        answer: Check = {"reachable": False, "error": type(exc).__name__}
    else:
        answer = {
            "reachable": True,
            "active_sessions": report.get("active_sessions"),
            "max_sessions": report.get("max_sessions"),
        }
    finally:
        client.close()
    if seconds > 0:
        with contextlib.suppress(Exception):
            cache.set(key, answer, seconds)
    return answer


def check_upstream() -> Check:
    if not settings.EMODAL_API_URLS:
        # No server is no upstream, not an upstream with nothing wrong: queries would wait for
        # ever (the settings refuse to start like this with DEBUG off).
        return {"ok": False, "error": "no upstream server configured (EMODAL_API_URL)"}
    breakers = breaker_states()
    servers: dict[str, Check] = {}
    for url in settings.EMODAL_API_URLS:
        breaker = breakers.get(url, {"state": UpstreamBreaker.State.CLOSED, "failures": 0})
        server: Check = {"breaker": breaker["state"], "breaker_failures": breaker["failures"]}
        server.update(ask_upstream(url))
        server["ok"] = server["reachable"] and breaker["state"] != UpstreamBreaker.State.OPEN
        servers[public_name(url)] = server
    return {"ok": all(s["ok"] for s in servers.values()), "servers": servers}


ESSENTIAL = {
    "database": check_database,
    "cache": check_cache,
    "cluster": check_cluster,
    "upstream": check_upstream,
}
INFORMATIONAL = {"queue": check_queue}


def may_see_details(request: HttpRequest) -> bool:
    """Staff, or a caller bearing HEALTHZ_TOKEN (a monitor with no login)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_staff:
        return True
    token = settings.HEALTHZ_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and secrets.compare_digest(given.strip().encode(), token.encode())
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {name: _guarded(check) for name, check in {**ESSENTIAL, **INFORMATIONAL}.items()}
    healthy = all(checks[name]["ok"] for name in ESSENTIAL)
    body: dict[str, Any] = {"status": "ok" if healthy else "failing"}
    if may_see_details(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if healthy else 503)
