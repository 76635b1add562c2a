"""One captcha per need across separate processes (not only threads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sessions_app.models import Account

from ..processes import start_worker, worker_env
from ..sim import SimControl

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_concurrent_processes_for_one_account_spend_one_captcha(
    alice: Account, sim: SimControl, tmp_path: Path
) -> None:
    sim.configure(latencies={"captcha": 500})  # 0.5 s: every process arrives mid-login
    env = worker_env(sim.url)
    workers = [start_worker("run_call.py", str(alice.pk), str(tmp_path), env=env) for _ in range(8)]
    sim.wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 8, timeout=60)
    (tmp_path / "go").touch()
    outputs: list[Any] = [w.communicate(timeout=60) for w in workers]
    assert [w.returncode for w in workers] == [0] * 8, [err for _, err in outputs]
    assert all(out.startswith("selected ") for out, _ in outputs)
    stats = sim.stats()
    assert stats["captcha_solves"] == 1
    assert stats["collisions"] == 0
    assert len(sim.calls("/get_appointments")) == 8


def test_a_lease_holder_killed_mid_creation_does_not_block_the_account(
    alice: Account, sim: SimControl, tmp_path: Path
) -> None:
    sim.configure(latencies={"captcha": 2000})  # 2 s: long enough to kill the worker mid-login
    (tmp_path / "go").touch()
    worker = start_worker(
        "run_call.py",
        str(alice.pk),
        str(tmp_path),
        env=worker_env(sim.url, EMODAL_LEASE_SECONDS="1"),
    )
    sim.wait_for(lambda: any(c["end"] is None for c in sim.calls("/get_session")), timeout=60)
    worker.kill()
    worker.wait(timeout=10)
    alice.refresh_from_db()
    assert alice.lease_token, "the killed worker held the lease"

    sim.configure(latencies={"captcha": 30})
    from sessions_app.services import SessionManager

    assert SessionManager(wait_seconds=20).ensure_session(alice)
    alice.refresh_from_db()
    assert alice.session_id and alice.lease_token == ""
    # Let the orphaned login finish upstream so it cannot leak into the next test.
    sim.wait_for(lambda: all(c["end"] is not None for c in sim.calls()), timeout=10)


def test_concurrent_refresh_commands_for_one_account_spend_one_captcha(
    alice: Account, sim: SimControl
) -> None:
    import subprocess
    import sys

    from ..processes import ROOT

    sim.configure(latencies={"captcha": 2000})  # 2 s: the second command starts mid-login
    env = worker_env(sim.url)
    commands = [
        subprocess.Popen(
            [sys.executable, "manage.py", "refresh_sessions", "--user", "alice"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    sim.wait_for(lambda: any(c["end"] is None for c in sim.calls("/get_session")), timeout=60)
    outputs = [c.communicate(timeout=60) for c in commands]
    assert [c.returncode for c in commands] == [0, 0], outputs
    assert all(out.startswith("alice: ") for out, _ in outputs)
    assert sim.stats()["captcha_solves"] == 1
    assert len(sim.calls("/get_session")) == 1
