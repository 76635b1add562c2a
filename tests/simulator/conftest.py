"""Fixtures of the simulator's own tests: one simulator per module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from emodal_sim import SimConfig, SimServer

from .support import SCALE, Api, default_config


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(time_scale=SCALE), port=0) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean(request: pytest.FixtureRequest) -> Iterator[None]:
    if "server" in request.fixturenames:
        server: SimServer = request.getfixturevalue("server")
        server.state.reset()
        server.state.update_config(default_config())
    yield


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def api(server: SimServer, http: requests.Session) -> Api:
    return Api(server, http)
