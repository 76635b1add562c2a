"""Fixtures: the simulator on loopback, personas, and a guard against any other network."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from emodal_sim import SimConfig, SimServer
from queries_app.models import Terminal
from sessions_app.models import Account
from sessions_app.upstream import EModalClient

from .processes import ROOT, Cluster
from .sim import FAST_SCALE, SimControl
from .taskqueue import TaskQueue

TERMINAL_NAMES = import_module("queries_app.migrations.0006_terminal_names").TERMINALS

_real_connect = socket.socket.connect


def pytest_sessionstart(session: pytest.Session) -> None:
    # A run that was killed leaves its SQLite test database (and -wal/-shm files) behind.
    for leftover in (ROOT / "var").glob("test_db-*.sqlite3*"):
        pid = int(leftover.name.split("-")[1].split(".")[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            leftover.unlink(missing_ok=True)
    # Redis outlives a run: an earlier run's request counts (kept a day for some tests) and
    # queued tasks would meet this run's users and queries, whose ids start again from 1.
    if redis_url := os.environ.get("REDIS_URL"):
        import redis

        redis.Redis.from_url(redis_url).flushdb()


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise OSError(f"tests may only connect to loopback, not {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_outside_network() -> Iterator[None]:
    socket.socket.connect = _loopback_only  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _api_counts_of_its_own() -> Iterator[None]:
    """Each test counts API requests afresh: the counts live outside the database, and the ids
    they are kept by come again in the next test (a rolled-back test gives its ids back).
    (Not through the `settings` fixture: some tests have a parameter of that name.)"""
    api = {**django_settings.CACHES["api"], "KEY_PREFIX": f"t{secrets.token_hex(6)}"}
    with override_settings(CACHES={**django_settings.CACHES, "api": api}):
        yield


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    server = SimServer(SimConfig(time_scale=FAST_SCALE), host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server: SimServer, settings: Any) -> SimControl:
    """A freshly reset simulator that the portal's settings point at."""
    control = SimControl(sim_server.url)
    control.reset()
    settings.EMODAL_API_URL = sim_server.url
    settings.EMODAL_API_URLS = [sim_server.url]
    return control


@pytest.fixture
def client_api(sim: SimControl) -> Iterator[EModalClient]:
    api = EModalClient(sim.url)
    yield api
    api.close()


def name_terminals() -> None:
    """The terminal names the data migration installs (a transactional test's flush removes
    them)."""
    for code, name in TERMINAL_NAMES.items():
        Terminal.objects.get_or_create(code=code, defaults={"name": name})


def make_account(username: str, **overrides: Any) -> Account:
    name_terminals()
    user, _ = get_user_model().objects.get_or_create(username=username)
    fields = {
        "emodal_username": f"{username}-emodal",
        "password": f"{username}-password",
        "captcha_api_key": f"{username}-captcha-key",
        "trucking_company": "K & R TRANSPORTATION LLC",
        "truck_plate": "7ABC123",
        **overrides,
    }
    return Account.objects.create(user=user, **fields)


@pytest.fixture
def alice(db: Any) -> Account:
    return make_account("alice")


@pytest.fixture
def bob(db: Any) -> Account:
    return make_account("bob")


@pytest.fixture
def staff(db: Any, django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("charlie", "charlie@example.com", "pw")


@pytest.fixture
def task_queue(db: Any) -> TaskQueue:
    """The task broker's queue, emptied before the test."""
    queue = TaskQueue()
    queue.purge()
    return queue


@pytest.fixture
def clusters(transactional_db: Any, sim: SimControl) -> Iterator[Any]:
    """Start real qcluster processes against the test database: `clusters()` → Cluster."""
    started: list[Cluster] = []

    def start(workers: int = 2, **extra: str) -> Cluster:
        cluster = Cluster(sim.url, workers=workers, **extra)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
