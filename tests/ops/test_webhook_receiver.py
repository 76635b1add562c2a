"""scripts/webhook_receiver.py, the README walk-through's receiver: it answers deliveries and,
given the endpoint's secret, tells a genuine one (signed as the portal signs) from a forgery."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from notifications.channels.webhook import signed_headers
from notifications.endpoints import new_secret

from ..containers.smtp import free_port
from ..processes import ROOT

SECRET = new_secret()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, log = free_port(), tmp_path / "receiver.log"
    process = subprocess.Popen(
        [sys.executable, "scripts/webhook_receiver.py", "--port", str(port), "--secret", SECRET],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while "Receiving webhooks" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    yield url, log
    process.terminate()
    process.wait(timeout=10)


def post(url: str, secret: str, event_id: str) -> int:
    body = json.dumps({"type": "webhook.test", "timestamp": "now", "data": {"id": event_id}})
    headers = signed_headers(secret, event_id, body, timezone.now())
    return requests.post(url, data=body, headers=headers, timeout=10).status_code


def test_a_genuine_delivery_is_verified_and_a_forged_one_refused(
    receiver: tuple[str, Path],
) -> None:
    url, log = receiver
    assert post(url, SECRET, "evt_genuine") == 204
    assert post(url, new_secret(), "evt_forged") == 401
    lines = log.read_text().splitlines()
    assert "evt_genuine webhook.test: signature verified" in lines
    assert "evt_forged webhook.test: signature WRONG" in lines
