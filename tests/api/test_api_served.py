"""The API over real HTTP: gunicorn serving the portal, real qcluster processes running the
queries and sending the webhooks, a receiver on loopback verifying them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from api_app.models import ApiToken
from api_app.tokens import revoke_token
from containers_app.models import Container, Event
from notifications.endpoints import create_endpoint
from notifications.models import Delivery
from queries_app.events import EventType
from queries_app.models import Query
from sessions_app.models import Account

from ..outbox import announce
from ..processes import worker_env
from ..served import Gunicorn
from ..sim import SimControl
from ..taskqueue import TaskQueue
from .conftest import token_for
from .receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_until(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def lfd_changed_events(query: Query) -> list[dict[str, Any]]:
    """The container.lfd_changed events the board recorded for a run, as announced."""
    events = Event.objects.filter(query=query, type=EventType.LFD_CHANGED)
    return [event.as_dict() for event in events]


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(f"{self.base}{path}", params=params, timeout=30)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return self.http.post(f"{self.base}{path}", json=body, timeout=30)


def json_error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == status and body["message"]
    return body


def test_over_http_a_token_runs_a_query_to_the_end_reads_it_and_hears_of_it(
    alice: Account,
    bob: Account,
    sim: SimControl,
    task_queue: TaskQueue,
    clusters: Any,
    receiver: Receiver,
) -> None:
    events = [EventType.QUERY_FINISHED, EventType.QUERY_FAILED, EventType.LFD_CHANGED]
    _, secret = create_endpoint(user=alice.user, url=receiver.url, events=events)
    bobs = Query.objects.create(account=bob, kind="containers", status=Query.Status.SUCCEEDED)
    clusters(WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true")
    # Webhooks go out from the delivery cluster, as under `make run` and `make serve`.
    clusters(workers=1, Q_CLUSTER_NAME="deliveries", WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true")
    web = Gunicorn(worker_env(sim.url))
    try:
        api = Api(web.url, token_for(alice.user))
        # Only the owner's: another account's query is not there at all.
        json_error(api.get(f"/api/v1/queries/{bobs.pk}/"), 404)
        json_error(api.get(f"/api/v1/queries/{bobs.pk}/containers/"), 404)
        # With DEBUG on, still no debug page under /api/.
        assert json_error(api.get("/api/v1/nowhere/"), 404)["code"] == "not_found"

        started = api.post("/api/v1/queries/", {"kind": "containers"})
        assert started.status_code == 201, started.text
        query_id = started.json()["id"]
        assert api.get("/api/v1/queries/").json()["results"][0]["id"] == query_id
        wait_until(lambda: not api.get(f"/api/v1/queries/{query_id}/").json()["is_live"])
        done = api.get(f"/api/v1/queries/{query_id}/").json()
        assert done["status"] == "succeeded", done["error"]
        query = Query.objects.get(pk=query_id)
        total = query.containers.count()
        assert total > 0 and done["results"]["containers"] == total

        pages, seen = 0, []
        url = f"/api/v1/queries/{query_id}/containers/"
        page = api.get(url, page_size=7, sort="-last_free_day").json()
        while True:
            pages += 1
            seen += [row["container_number"] for row in page["results"]]
            if not page["next"]:
                break
            page = api.http.get(page["next"], timeout=30).json()
        assert len(seen) == len(set(seen)) == total and pages == -(-total // 7)
        free = api.get(url, holds="no").json()
        assert free["count"] == query.containers.filter(holds=False).count()
        assert all(row["holds"] is False for row in free["results"])
        # The board merges the run in a task of its own.
        wait_until(lambda: api.get("/api/v1/containers/").json()["count"] == total)
        board = api.get("/api/v1/containers/", page_size=1000).json()["results"]
        assert {r["sheet_query"] for r in board} == {query_id}

        # Its end reaches the receiver, signed.
        receiver.wait_for(lambda got: len(got) >= 1)
        first = Webhook(secret).verify(receiver.requests()[0].body, receiver.requests()[0].headers)
        assert first["type"] == "query.finished"
        assert first["data"]["query_id"] == query_id and first["data"]["status"] == "succeeded"

        # The account's containers change upstream; a second run finds last free days moved.
        sim.advance(alice.emodal_username)
        again = api.post("/api/v1/queries/", {"kind": "containers"})
        assert again.status_code == 201 and again.json()["id"] != query_id
        second_id = again.json()["id"]
        wait_until(lambda: not Query.objects.get(pk=second_id).is_live)
        second = Query.objects.get(pk=second_id)
        # The board merges the run in a task of its own; its events are committed with it.
        wait_until(lambda: Container.objects.filter(sheet_query=second).exists())
        lfd_events = lfd_changed_events(second)
        assert lfd_events, "the simulator moves some last free days between generations"
        known = {c.container_number: c for c in Container.objects.filter(account=alice)}
        for event in lfd_events:
            assert str(known[event["container_number"]].last_free_day) == event["data"]["after"]
        announce(lfd_events)  # announced again (a task run twice): still delivered once
        receiver.wait_for(lambda got: len(got) >= 2 + len(lfd_events))
        wait_until(lambda: not Delivery.objects.webhooks().filter(status="pending").exists())
        got = receiver.requests()
        assert Counter(r.headers["webhook-id"] for r in got).most_common(1)[0][1] == 1
        payloads = [Webhook(secret).verify(r.body, r.headers) for r in got]
        lfd = {p["data"]["container_number"]: p for p in payloads if p["type"] == LFD_TYPE}
        assert set(lfd) == {e["container_number"] for e in lfd_events}
        for event in lfd_events:
            data = lfd[event["container_number"]]["data"]
            assert (data["before"], data["after"]) == (
                event["data"]["before"],
                event["data"]["after"],
            )
            assert data["account_id"] == alice.pk and data["query_id"] == second_id
        assert [p["data"]["query_id"] for p in payloads if p["type"] == "query.finished"] == [
            query_id,
            second_id,
        ]

        # A revoked token, and an expired one, are refused.
        revoke_token(token=ApiToken.objects.get(user=alice.user))
        body = json_error(api.get("/api/v1/queries/"), 401)
        assert body["code"] == "authentication_failed"
        expired = Api(web.url, token_for(alice.user, expires_in_days=1))
        assert expired.get("/api/v1/queries/").status_code == 200
        ApiToken.objects.filter(revoked_at=None).update(expires_at=second.finished_at)
        assert "expired" in json_error(expired.get("/api/v1/queries/"), 401)["message"]
    finally:
        web.stop()


LFD_TYPE = EventType.LFD_CHANGED.value


def test_the_rate_limit_holds_across_web_processes(alice: Account, sim: SimControl) -> None:
    web = Gunicorn(
        worker_env(sim.url, API_RATE_LIMIT="10", API_RATE_WINDOW_SECONDS="86400"), workers=3
    )
    try:
        api = Api(web.url, token_for(alice.user))
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(lambda _: api.get("/api/v1/accounts/"), range(30)))
        assert Counter(a.status_code for a in answers) == {200: 10, 429: 20}
        for refused in (a for a in answers if a.status_code == 429):
            assert 1 <= int(refused.headers["Retry-After"]) <= 86400
            assert json_error(refused, 429)["code"] == "rate_limited"
        # Another token has its own count.
        assert Api(web.url, token_for(alice.user)).get("/api/v1/accounts/").status_code == 200
    finally:
        web.stop()
