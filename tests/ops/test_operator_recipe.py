"""The README's recipes, run as written on a fresh copy of the project, in a shell with none of
the portal's variables set — as an operator would:

- the operator's recipe: `cp .env.example .env`, the two keys made by the README's own
  commands, `make sim` and `make serve`, the first staff login, an account, a query to its
  end, then SIGTERM to `make` leaves no process behind;
- the API walk-through on a `make run` install, with its loopback webhook receiver, then
  SIGTERM to `make`; and SIGTERM to `make run`'s script while it is still preparing.

What is not the README's: ports of the test's own (SERVE_BIND, PORTAL_PORT, SIM_PORT, and the
receiver's; `EMODAL_API_URL` in `.env` pointed at the test's simulator, as the recipe says to
point it at a server), a faster simulator (SIM_TIME_SCALE) and fewer workers, the superuser's
password given by `--noinput` (no terminal here), and the copy's virtualenv: a link to this
one, whose make stamp is kept newer than the copy's requirements so that make installs nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ..containers.smtp import free_port
from ..processes import ROOT

pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text()
STARTUP_SECONDS = 90


# --- A fresh copy, a fresh shell ---------------------------------------------------------------


@pytest.fixture
def fresh_copy(tmp_path: Path) -> Path:
    """The project's files as they are now (tracked and new, not ignored), in a folder of
    their own: its own `.env`, `var/` and database."""
    venv = Path(sys.prefix)
    stamp = venv / ".installed"
    if not stamp.exists():
        pytest.skip("the virtualenv was not made by make (no .venv/.installed)")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    copy = tmp_path / "portal"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if name == ".venv" or not source.is_file():  # the venv link; a file deleted meanwhile
            continue
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy / name)
    (copy / ".venv").symlink_to(venv)
    # make would reinstall the requirements into the shared virtualenv if they were newer.
    older = stamp.stat().st_mtime - 60
    for requirements in copy.glob("requirements*.txt"):
        os.utime(requirements, (older, older))
    return copy


def fresh_shell(**extra: str) -> dict[str, str]:
    """The environment without any of the portal's variables (every name .env.example lists),
    nor the test run's own."""
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    names |= {"DJANGO_SETTINGS_MODULE", "DJANGO_SUPERUSER_PASSWORD", "MAKEFLAGS", "MAKELEVEL"}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in names and not key.startswith("PYTEST")
    }
    env.update(extra)
    return env


def sh(command: str, copy: Path, env: dict[str, str], stdin: str = "") -> Any:
    """`command` in bash, with no terminal (a password prompt reads standard input)."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=copy,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        start_new_session=True,
    )


# --- Processes -----------------------------------------------------------------------------------


def process_table() -> dict[int, int]:
    """pid -> parent pid, of every process."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
    rows = (line.split() for line in listing.stdout.splitlines())
    return {int(pid): int(ppid) for pid, ppid in rows}


def descendants(root: int) -> set[int]:
    table = process_table()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in table.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of ours that exited stays a zombie until reaped; it is gone all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class Make:
    """`make TARGET` in the copy, in its own session (a signal reaches only whom it is sent
    to), its output in a file."""

    def __init__(self, copy: Path, target: str, env: dict[str, str]) -> None:
        self.log = copy / f"make-{target}.log"
        self.process = subprocess.Popen(
            ["make", target],
            cwd=copy,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, check: object, timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if self.process.poll() is not None:
                raise AssertionError(f"make exited ({self.process.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def terminate(self, pid: int | None = None) -> set[int]:
        """SIGTERM to make (or to `pid`); make ends, and every process it had started with it.
        Returns what was left (nothing, if all went well), after killing it."""
        started = descendants(self.process.pid) | {self.process.pid}
        os.kill(pid or self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=40)
        deadline = time.monotonic() + 20
        while (left := {p for p in started if alive(p)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid_left in left:  # ours: started by this test
            os.kill(pid_left, signal.SIGKILL)
        return left

    def kill(self) -> None:
        if self.process.poll() is None:
            self.terminate()


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=10)
    except requests.RequestException:  # not listening yet, or too busy starting to answer
        return False
    return True


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    except (requests.RequestException, ValueError):
        return False


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def code_blocks(after: str, count: int) -> list[str]:
    """The README's first `count` shell blocks after the text `after`."""
    start = README.index(after)
    return re.findall(r"```sh\n(.*?)```", README[start:], re.S)[:count]


def commands(block: str) -> list[str]:
    """A shell block's commands, continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [
        re.sub(r"\s{2,}#.*$", "", line)
        for line in joined.splitlines()
        if line.strip() and not line.startswith("#")
    ]


# --- The operator's recipe -----------------------------------------------------------------------


def test_the_operators_recipe_runs_as_written(fresh_copy: Path) -> None:
    recipe, after = code_blocks("## The operator's recipe", 2)
    assert commands(recipe) == ["cp .env.example .env", "make serve"]
    shell = fresh_shell()

    # cp .env.example .env; the two keys, made by the README's commands.
    assert sh("cp .env.example .env", fresh_copy, shell).returncode == 0
    keys = dict(re.findall(r"#\s+(SECRET_KEY|FIELD_ENCRYPTION_KEY)=…\s+(python3 -c .*)", recipe))
    assert set(keys) == {"SECRET_KEY", "FIELD_ENCRYPTION_KEY"}
    dotenv = (fresh_copy / ".env").read_text()
    for name, command in keys.items():
        made = sh(command, fresh_copy, shell)
        assert made.returncode == 0, made.stderr
        dotenv, found = re.subn(rf"^{name}=$", f"{name}={made.stdout.strip()}", dotenv, flags=re.M)
        assert found == 1
    # The upstream: .env.example names the simulator's address; the test's is on its own port.
    sim_port, web_port = free_port(), free_port()
    assert "\nEMODAL_API_URL=http://127.0.0.1:5010\n" in dotenv
    dotenv = dotenv.replace(
        "\nEMODAL_API_URL=http://127.0.0.1:5010\n",
        f"\nEMODAL_API_URL=http://127.0.0.1:{sim_port}\n",
    )
    (fresh_copy / ".env").write_text(dotenv)

    sim = Make(fresh_copy, "sim", fresh_shell(SIM_PORT=str(sim_port), SIM_TIME_SCALE="0.01"))
    serve = Make(
        fresh_copy,
        "serve",
        fresh_shell(SERVE_BIND=f"127.0.0.1:{web_port}", SERVE_WEB_WORKERS="1", Q_WORKERS="1"),
    )
    portal = f"http://127.0.0.1:{web_port}"
    try:
        sim.wait_for("simulator", lambda: answers(f"http://127.0.0.1:{sim_port}/health"))
        serve.wait_for("healthy portal", lambda: healthy(portal))

        # The first staff login, by the README's command (its password without a terminal).
        password = secrets.token_urlsafe(12)
        operator = fresh_shell(
            DJANGO_SUPERUSER_PASSWORD=password,
            EMODAL_USER="alice-emodal",
            EMODAL_PASSWORD="alice-emodal-password",  # noqa: S106
            CAPTCHA_KEY="alice-captcha-key",
        )
        steps = commands(after)
        assert [re.search(r"manage\.py (\w+)", step).group(1) for step in steps] == [
            "createsuperuser",
            "set_credentials",
            "changepassword",
            "run_queries",
        ]
        made = sh(steps[0] + " --noinput", fresh_copy, operator)
        assert made.returncode == 0, made.stderr
        admin = log_in(portal, "/admin/login/?next=/admin/", "boss", password)
        assert admin.status_code == 200 and "Administration" in admin.text

        # An account: set_credentials says alice cannot log in yet, and how to fix it.
        provisioned = sh(steps[1], fresh_copy, operator)
        assert provisioned.returncode == 0, provisioned.stderr
        assert "Created account alice (new portal user)." in provisioned.stdout
        assert "alice has no portal password yet and cannot log in" in provisioned.stdout
        assert "manage.py changepassword alice" in provisioned.stdout
        assert "alice-emodal-password" not in provisioned.stdout + provisioned.stderr
        alice_password = secrets.token_urlsafe(12)
        changed = sh(steps[2], fresh_copy, operator, stdin=f"{alice_password}\n" * 2)
        assert changed.returncode == 0, changed.stdout + changed.stderr
        board = log_in(portal, "/accounts/login/", "alice", alice_password)
        assert board.status_code == 200 and "Containers" in board.text

        # A query to its end, through the served portal's task cluster and the simulator.
        ran = sh(steps[3], fresh_copy, operator)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "succeeded" in ran.stdout

        # Ctrl-C's equivalent for a service manager: everything stops.
        assert serve.terminate() == set()
        # make passes the signal on, waits for its child, then dies of the signal itself.
        assert serve.process.returncode == -signal.SIGTERM, serve.output()
        assert "[serve] stopped" in serve.output()
        assert not listening(web_port)
        assert "Traceback" not in serve.output()
    finally:
        serve.kill()
        sim.kill()


def log_in(portal: str, page: str, username: str, password: str) -> requests.Response:
    """A login as a browser behind the TLS proxy would make it (the proxy says https; the
    portal's cookies are Secure, so they are carried by hand over plain HTTP): the page it
    lands on."""
    secure = {"X-Forwarded-Proto": "https"}
    origin = portal.replace("http://", "https://")
    form = requests.get(f"{portal}{page}", headers=secure, timeout=10)
    assert form.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    logged = requests.post(
        f"{portal}{page}",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={**secure, "Origin": origin, "Referer": f"{origin}{page}"},
        cookies={"csrftoken": form.cookies["csrftoken"]},
        allow_redirects=False,
        timeout=10,
    )
    assert logged.status_code == 302, logged.text[:500]
    return requests.get(
        f"{portal}{logged.headers['Location']}",
        headers=secure,
        cookies={"sessionid": logged.cookies["sessionid"]},
        allow_redirects=False,
        timeout=10,
    )


# --- make run: the API walk-through, and stopping ---------------------------------------------


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="the walk-through needs curl and jq"
)
def test_the_api_walkthrough_runs_as_written_on_make_run_and_sigterm_stops_it_all(
    fresh_copy: Path,
) -> None:
    receiver_block, walk = code_blocks("A walk through with curl", 2)
    web_port, sim_port, hook_port = free_port(), free_port(), free_port()
    run = Make(
        fresh_copy,
        "run",
        fresh_shell(
            WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",  # as the walk-through says to start it
            PORTAL_PORT=str(web_port),
            SIM_PORT=str(sim_port),
            SIM_TIME_SCALE="0.01",
            Q_WORKERS="2",
        ),
    )
    receiver_log = fresh_copy / "receiver.log"
    (receiver_command,) = commands(receiver_block)
    receiver = subprocess.Popen(
        ["bash", "-c", "exec " + receiver_command.replace("9000", str(hook_port))],
        cwd=fresh_copy,
        env=fresh_shell(),
        stdout=receiver_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        run.wait_for("healthy portal", lambda: healthy(f"http://127.0.0.1:{web_port}"))
        run.wait_for("receiver", lambda: listening(hook_port))

        script = walk.replace("127.0.0.1:8000", f"127.0.0.1:{web_port}").replace(
            "127.0.0.1:9000", f"127.0.0.1:{hook_port}"
        )
        walked = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=fresh_copy,
            env=fresh_shell(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert walked.returncode == 0, walked.stdout + walked.stderr
        assert '"status": "succeeded"' in walked.stdout  # step 3: the run ended well
        assert '"secret": "whsec_' in walked.stdout  # step 5: the endpoint, its secret once

        # The receiver hears the test event and the end of the query step 5 started.
        deadline = time.monotonic() + 60
        heard = ("webhook.test", "query.finished")
        while not all(kind in receiver_log.read_text() for kind in heard):
            assert time.monotonic() < deadline, receiver_log.read_text() + run.output()
            time.sleep(0.2)

        assert run.terminate() == set()
        assert run.process.returncode == -signal.SIGTERM, run.output()
        assert "[run] stopped" in run.output()
        assert not listening(web_port) and not listening(sim_port)
    finally:
        run.kill()
        receiver.terminate()
        receiver.wait(timeout=10)


def test_sigterm_to_make_runs_script_while_it_prepares_stops_everything(fresh_copy: Path) -> None:
    run = Make(
        fresh_copy,
        "run",
        fresh_shell(PORTAL_PORT=str(free_port()), SIM_PORT=str(free_port())),
    )
    try:
        # make's child is the script itself (exec); it is migrating the new database.
        def migrating() -> bool:
            for pid in descendants(run.process.pid):
                try:
                    if b"migrate" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        return True
                except OSError:  # gone meanwhile
                    pass
            return False

        run.wait_for("migrate", migrating)
        (script,) = [pid for pid, parent in process_table().items() if parent == run.process.pid]
        assert run.terminate(script) == set()
        assert "[run] starting" not in run.output()  # nothing else was started
        assert run.process.returncode == 0, run.output()
    finally:
        run.kill()
