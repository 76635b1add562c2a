"""The simulated portal users of the load run, for Locust (`bench/load.py` runs it headless).

Each Locust user is one portal user with an account of their own (`$LOAD_USERS`, written by
the load run): it logs in through the login form, then reads its results pages the way a
dispatcher does — the list, a query's page with filters, sort order and pages, the progress
JSON the page polls while a query runs, now and then an export — and starts a query through
the page's form every 30–60 s. Every request is appended to `$LOAD_SAMPLES` as one JSON line
(name, method, milliseconds, status) for the run to compute its figures.

Nothing here imports Django: Locust runs in its own process, on gevent.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from typing import Any

from locust import events, task
from locust.contrib.fasthttp import FastHttpUser

USERS: list[dict[str, Any]] = json.loads(open(os.environ["LOAD_USERS"]).read())  # noqa: SIM115
SAMPLES = open(os.environ["LOAD_SAMPLES"], "a")  # noqa: SIM115
NEXT_USER = itertools.count()

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
QUERY_LINK = re.compile(r'href="/queries/(\d+)/"')
NEW_QUERY = re.compile(r"/queries/(\d+)/$")

# A dispatcher starts a query now and then, not in a loop: the first within half a minute of
# logging in, then one every 30–60 s.
FIRST_TRIGGER_S = (5, 30)
TRIGGER_EVERY_S = (30, 60)
READ_S = (1.0, 4.0)
# After starting a query, the page polls its progress every 2 s; a user watches a few polls.
POLL_S = 2.0
WATCH_POLLS = 5
SORTS = ("container_number", "last_free_day", "status", "holds", "trade_type", "line", "fees")
TRIGGER_KINDS = (
    ("timeline", 4),
    ("booking_number", 2),
    ("containers", 2),
    ("bulk_info", 1),
    ("appointments", 1),
)


@events.request.add_listener
def record(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    exception: Any = None,
    **kwargs: Any,
) -> None:
    status = getattr(response, "status_code", 0) or 0
    sample = {
        "name": name,
        "method": request_type,
        "ms": response_time,
        "status": status,
        "end": time.time(),
    }
    if exception is not None and not status:
        sample["error"] = type(exception).__name__
    SAMPLES.write(json.dumps(sample) + "\n")


@events.quitting.add_listener
def close_samples(**kwargs: Any) -> None:
    SAMPLES.flush()


class PortalUser(FastHttpUser):
    def wait_time(self) -> float:
        # A person reads a page for a few seconds before the next click; a page watching a
        # running query polls its progress every 2 s.
        if getattr(self, "watching", None) is not None:
            return POLL_S
        return random.uniform(*READ_S)  # noqa: S311

    def on_start(self) -> None:
        self.me = USERS[next(NEXT_USER) % len(USERS)]
        self.ids: list[int] = []
        self.csrf = ""
        self.watching: tuple[int, int] | None = None
        self.log_in()
        self.next_trigger = time.monotonic() + random.uniform(*FIRST_TRIGGER_S)  # noqa: S311

    def log_in(self) -> None:
        page = self.client.get("/accounts/login/", name="GET /accounts/login/")
        token = CSRF.search(page.text or "")
        with self.client.post(
            "/accounts/login/",
            name="POST /accounts/login/",
            data={
                "username": self.me["username"],
                "password": self.me["password"],
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "next": "/queries/",
            },
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"login answered {response.status_code}, not a redirect")
        self.read_list()

    def read_list(self) -> None:
        page = self.client.get("/queries/", name="GET /queries/")
        text = page.text or ""
        self.ids = sorted({int(i) for i in QUERY_LINK.findall(text)}) or self.ids
        token = CSRF.search(text)
        if token:
            # Login rotates the token; the list's start form carries the current one.
            self.csrf = token.group(1)

    @task
    def visit(self) -> None:
        if self.watching is not None:
            self.watch()
        elif time.monotonic() >= self.next_trigger:
            self.trigger()
        else:
            action = random.choices(  # noqa: S311
                (self.read_list, self.read_query, self.read_filtered, self.poll, self.export),
                weights=(3, 4, 6, 3, 1),
            )[0]
            action()

    def pick(self) -> int | None:
        return random.choice(self.ids) if self.ids else None  # noqa: S311

    def read_query(self) -> None:
        pk = self.pick()
        if pk is not None:
            self.client.get(f"/queries/{pk}/", name="GET /queries/<id>/")

    def filters(self) -> dict[str, str]:
        params: dict[str, str] = {}
        sort = random.choice(SORTS)  # noqa: S311
        params["sort"] = sort if random.random() < 0.5 else f"-{sort}"  # noqa: S311
        params["page"] = str(random.randint(1, 3))  # noqa: S311
        for name, values in (
            ("holds", ("yes", "no")),
            ("trade", ("IMPORT", "EXPORT")),
            ("lfd_within", ("3", "7", "14")),
            ("changed", ("yes",)),
        ):
            if random.random() < 0.3:  # noqa: S311
                params[name] = random.choice(values)  # noqa: S311
        return params

    def read_filtered(self) -> None:
        pk = self.pick()
        if pk is not None:
            query = "&".join(f"{k}={v}" for k, v in self.filters().items())
            self.client.get(f"/queries/{pk}/?{query}", name="GET /queries/<id>/?filters")

    def poll(self) -> None:
        pk = self.pick()
        if pk is not None:
            self.client.get(f"/queries/{pk}/progress/", name="GET /queries/<id>/progress/")

    def export(self) -> None:
        pk = self.pick()
        if pk is None:
            return
        fmt = random.choice(("csv", "xlsx"))  # noqa: S311
        query = "&".join(f"{k}={v}" for k, v in self.filters().items() if k != "page")
        self.client.get(
            f"/queries/{pk}/export/containers.{fmt}?{query}",
            name=f"GET /queries/<id>/export/containers.{fmt}",
        )

    def trigger(self) -> None:
        self.next_trigger = time.monotonic() + random.uniform(*TRIGGER_EVERY_S)  # noqa: S311
        kinds, weights = zip(*TRIGGER_KINDS, strict=True)
        kind = random.choices(kinds, weights=weights)[0]  # noqa: S311
        data = {"csrfmiddlewaretoken": self.csrf, "kind": kind}
        if kind in ("timeline", "booking_number"):
            pool = self.me["imports"] if kind == "timeline" else self.me["exports"]
            data["container_id"] = random.choice(pool)  # noqa: S311
        elif kind == "bulk_info":
            data["import_containers"] = "\n".join(random.sample(self.me["imports"], 3))  # noqa: S311
            data["export_containers"] = " ".join(random.sample(self.me["exports"], 2))  # noqa: S311
        with self.client.post(
            "/queries/start/",
            name="POST /queries/start/ (trigger)",
            data=data,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            location = response.headers.get("Location", "") if response.headers else ""
            started = NEW_QUERY.search(location)
            if response.status_code == 302 and started:
                pk = int(started.group(1))
                self.ids.append(pk)
                self.watching = (pk, WATCH_POLLS)
            elif response.status_code < 400:
                # 200 is the form again with an error: the input was refused.
                response.failure(f"trigger not accepted (HTTP {response.status_code})")
        if self.watching is not None:
            self.client.get(f"/queries/{self.watching[0]}/", name="GET /queries/<id>/")

    def watch(self) -> None:
        assert self.watching is not None
        pk, left = self.watching
        self.client.get(f"/queries/{pk}/progress/", name="GET /queries/<id>/progress/")
        self.watching = (pk, left - 1) if left > 1 else None
