"""Canary scan: an account's password, captcha key and session ids are unique random strings.
The account goes through every class of upstream outcome and every kind of query; then the
database (django-q's pickled fields decoded), the task arguments, every log line as the
handlers would write it, every admin page, every user page and export, the error pages and
every exception text are searched for them. They must appear nowhere (the encrypted columns
hold them only as ciphertext)."""

from __future__ import annotations

import io
import logging
import secrets
import traceback
import zipfile
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path, reverse
from django.utils import timezone
from django_q.models import OrmQ, Task
from django_q.tasks import async_task

from emodal_portal.urls import urlpatterns as portal_urlpatterns
from emodal_sim import NOT_FOUND_CONTAINER, SimServer
from emodal_sim.data import containers_for
from queries_app.engine import sweep_queries
from queries_app.models import Query
from queries_app.services import cancel_query, start_query
from sessions_app.models import Account, UpstreamBreaker
from sessions_app.redaction import RedactSecretsFilter
from sessions_app.services import (
    AccountRejected,
    CaptchaBudgetReached,
    SessionManager,
    SessionUnavailable,
)
from sessions_app.upstream import (
    SESSION_GONE_MARKER,
    CircuitOpen,
    SessionGone,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

from ..conftest import make_account
from ..sim import SimControl
from ..taskqueue import TaskQueue

pytestmark = pytest.mark.django_db(transaction=True)

# The account's portal login; "+c6" gives it 6 containers upstream (a short availability run).
CANARY = "canary+c6"
# Change pages opened per admin model: enough to see every kind of row this test makes.
CHANGE_PAGES = 20


def _failing_view(request: HttpRequest) -> HttpResponse:
    """A view that breaks while it holds an account's secrets in its local variables."""
    account = Account.objects.get(user__username=CANARY)
    credentials = {"password": str(account.password), "key": str(account.captcha_api_key)}
    raise RuntimeError(f"a view failed while holding {len(credentials)} credentials")


# The portal's URLs plus one view that raises, to render the 500 page (see the test's mark).
urlpatterns = [path("failing-view/", _failing_view), *portal_urlpatterns]


def dump_database() -> str:
    """Every row of every table as text, plus django-q's pickled fields decoded."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            parts.extend(repr(row) for row in cursor.fetchall())
    for task in Task.objects.all():
        parts.append(repr((task.args, task.kwargs, task.result)))
    for queued in OrmQ.objects.all():
        parts.append(repr(queued.task))
    return "\n".join(parts)


def exception_text(exc: BaseException) -> str:
    return f"{exc}\n{exc!r}\n{''.join(traceback.format_exception(exc))}"


def log_lines(records: list[logging.LogRecord]) -> str:
    """Each record as the configured handlers write it: through the redaction filter, with
    its traceback."""
    redact, formatter = RedactSecretsFilter(), logging.Formatter("%(name)s %(message)s")
    lines = []
    for record in records:
        redact.filter(record)
        lines.append(formatter.format(record))
    return "\n".join(lines)


def xlsx_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        return "\n".join(book.read(name).decode("utf-8", "replace") for name in book.namelist())


class FaultMatrix:
    """Runs upstream operations for the canary account and keeps every failure raised."""

    def __init__(self, sim: SimControl, account: Account) -> None:
        self.sim, self.account = sim, account
        self.manager = SessionManager()
        self.failures: list[BaseException] = []

    def session(self) -> str:
        self.account.refresh_from_db()
        return str(self.account.session_id)

    def expect(self, error: type[BaseException], action: Callable[[], Any]) -> None:
        with pytest.raises(error) as caught:
            action()
        self.failures.append(caught.value)

    def appointments(self) -> Any:
        return self.manager.run(self.account, lambda api, sid: api.get_appointments(sid))

    def fresh_login(self) -> Any:
        self.account.refresh_from_db()
        session_id = self.account.session_id
        self.manager.drop_session(self.account)
        if session_id:  # one the portal adopted is not closed by it: close it here
            self.sim.delete(str(session_id))
        return self.manager.ensure_session(self.account)

    def accept_credentials_again(self) -> None:
        # As an edit of the credentials would; the canaries themselves stay as they are.
        Account.objects.filter(pk=self.account.pk).update(
            credential_state=Account.CredentialState.UNKNOWN, credential_error="", login_failures=0
        )


def run_fault_matrix(matrix: FaultMatrix, settings: Any) -> None:
    sim, sid = matrix.sim, matrix.session
    matrix.manager.ensure_session(matrix.account)
    matrix.appointments()
    # Operations: the upstream's error texts echo the session id, as it sometimes does.
    sim.fault(
        "/get_appointments",
        status=500,
        error=f"Automation failed in {sid()}",
        details=f"browser for {sid()} crashed",
    )
    matrix.expect(UpstreamUnavailable, matrix.appointments)
    sim.fault("/get_appointments", mode="close")
    matrix.expect(UpstreamUnavailable, matrix.appointments)
    sim.fault("/get_appointments", mode="non_json", status=502)
    matrix.expect(UpstreamUnavailable, matrix.appointments)
    sim.fault("/get_appointments", status=400, error=f"Invalid target for {sid()}")
    matrix.expect(UpstreamRejected, matrix.appointments)
    sim.delete(sid())  # gone once: replaced and retried
    matrix.appointments()
    sim.fault("/get_appointments", count=2, status=400, error=SESSION_GONE_MARKER)
    matrix.expect(SessionGone, matrix.appointments)  # gone twice: a real failure
    sim.fault("/get_appointments", mode="delay", delay=500)  # 0.5 s
    scale, settings.EMODAL_TIMEOUT_SCALE = settings.EMODAL_TIMEOUT_SCALE, 0.0005
    slow = FaultMatrix(sim, matrix.account)  # its client reads within 60 ms
    matrix.expect(UpstreamTimeout, slow.appointments)
    settings.EMODAL_TIMEOUT_SCALE = scale
    sim.wait_for(lambda: all(call["end"] is not None for call in sim.calls()))

    # Logins: server failures are retried, then given up; failures that may have spent a
    # captcha flag the account after two in a row; refusals mark it at once.
    for fault in (
        {"status": 500, "error": "Failed to allocate session capacity"},
        {"mode": "close"},
    ):
        sim.fault("/get_session", count=2, **fault)
        matrix.expect(SessionUnavailable, matrix.fresh_login)
    UpstreamBreaker.objects.all().delete()  # four server failures in a row opened it
    for fault in (
        {
            "status": 401,
            "error": "Authentication failed",
            "details": "LoginErrorType.RECAPTCHA_FAILED",
        },
        {
            "status": 401,
            "error": "Authentication failed",
            "details": "LoginErrorType.NETWORK_ERROR",
        },
        {"status": 401, "error": "Manual login interrupted: EOF when reading a line"},
    ):
        sim.fault("/get_session", count=2, **fault)
        matrix.expect(AccountRejected, matrix.fresh_login)
        matrix.expect(AccountRejected, matrix.fresh_login)  # nothing more is tried
        matrix.accept_credentials_again()
    for details in ("LoginErrorType.INVALID_CREDENTIALS", "LoginErrorType.VPN_REQUIRED"):
        sim.fault("/get_session", status=401, error="Authentication failed", details=details)
        matrix.expect(AccountRejected, matrix.fresh_login)
        matrix.expect(AccountRejected, matrix.fresh_login)  # nothing more is tried
        matrix.accept_credentials_again()
    matrix.fresh_login()
    settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 1
    matrix.expect(CaptchaBudgetReached, matrix.fresh_login)
    settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 0

    # The breaker: transient failures in a row open it, and it says why.
    matrix.manager.ensure_session(matrix.account)
    sim.fault("/get_appointments", count=4, status=500, error=f"Automation failed in {sid()}")
    for _ in range(4):
        matrix.expect(UpstreamUnavailable, matrix.appointments)
    matrix.expect(CircuitOpen, matrix.appointments)
    UpstreamBreaker.objects.all().delete()
    async_task("sessions_app.tasks.refresh_session", matrix.account.pk, sync=True)


def run_queries_to_the_end(queue: TaskQueue, tasks: list[str]) -> None:
    """Run queued tasks through django-q in this process (their results are saved as a
    cluster would save them) until no query is live; the sweep stands in for the clock."""
    for _ in range(300):
        drained = queue.drain()
        for task in drained:
            tasks.append(repr(task))
            async_task(task["func"], *task["args"], task_name=task["name"], sync=True)
        if drained:
            continue
        if not Query.objects.live().exists():
            return
        counts = sweep_queries(now=timezone.now() + timedelta(hours=1))
        assert any(counts.values()), "live queries with nothing to run"
    raise AssertionError("the queries did not end")


def run_query_flows(
    sim: SimControl, sim_server: SimServer, account: Account, queue: TaskQueue
) -> list[str]:
    """Every kind of query, with faults on the way; returns the tasks' payloads."""
    tasks: list[str] = []
    rows = containers_for(str(account.emodal_username), sim_server.config)
    export = next(r["Container #"] for r in rows if r["Trade Type"] == "EXPORT")
    imports = [r["Container #"] for r in rows if r["Trade Type"] == "IMPORT"][:2]
    check = {"terminal": "ITS", "move_type": "PICK FULL"}

    def run(kind: str, **params: Any) -> None:
        start_query(account=account, kind=kind, params=params)
        run_queries_to_the_end(queue, tasks)

    account.refresh_from_db()
    sim.fault("/check_appointments", status=500, error=f"Phase 2 failed in {account.session_id}")
    sim.fault("/get_info_bulk", mode="close")
    run("availability")
    sim.restart()  # every session gone between two queries
    run("containers")
    sim.fault("/get_appointments", mode="non_json")
    run("appointments")
    run("timeline", container_id=NOT_FOUND_CONTAINER)
    sim.fault("/get_container_timeline", count=3, status=500, error="Navigation failed")
    run("timeline", container_id=imports[0])
    run("booking_number", container_id=export)
    run("bulk_info", import_containers=imports, export_containers=[export])
    run("appointment_check", container_type="import", container_id=imports[0], **check)
    run("appointment_check", container_type="export", booking_number="INVALID9", **check)
    account.refresh_from_db()
    last_session = account.session_id
    SessionManager().drop_session(account)
    if last_session:
        sim.delete(str(last_session))
    sim.fault(
        "/get_session",
        status=401,
        error="Authentication failed",
        details="LoginErrorType.INVALID_CREDENTIALS",
    )
    run("containers")
    Account.objects.filter(pk=account.pk).update(
        credential_state=Account.CredentialState.UNKNOWN, credential_error=""
    )
    cancel_query(query=start_query(account=account, kind="appointments")[0])
    queue.drain()
    start_query(account=account, kind="containers")  # left queued for the dump
    return tasks


@pytest.mark.urls(__name__)
def test_canaries_appear_nowhere(
    sim: SimControl,
    sim_server: SimServer,
    staff: Any,
    task_queue: TaskQueue,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.EMODAL_BREAKER_FAILURES = 4
    settings.EMODAL_CAPTCHA_BUDGET_PER_ACCOUNT_HOUR = 0
    settings.QUERY_RETRY_BASE_SECONDS = 0
    password, key = f"pw-{secrets.token_hex(8)}", f"key-{secrets.token_hex(8)}"
    account = make_account(CANARY, password=password, captcha_api_key=key)

    matrix = FaultMatrix(sim, account)
    run_fault_matrix(matrix, settings)
    tasks = run_query_flows(sim, sim_server, account, task_queue)
    queries = list(Query.objects.filter(account=account))
    session_ids = {
        call[field] for call in sim.calls() for field in ("session_id", "session_id_out")
    } - {None}

    owner, staff_client = Client(), Client()
    owner.force_login(account.user)
    staff_client.force_login(staff)
    pages: dict[str, bytes] = {}

    def visit(client: Client, url: str, *statuses: int) -> None:
        response = client.get(url)
        assert response.status_code in (statuses or (200,)), url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        pages[url] = body

    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        visit(staff_client, reverse("admin:{}_{}_changelist".format(*info)))
        for pk in model.objects.values_list("pk", flat=True)[:CHANGE_PAGES]:
            visit(staff_client, reverse("admin:{}_{}_change".format(*info), args=[pk]))
    visit(staff_client, reverse("admin:sessions_app_account_add"))
    visit(owner, reverse("queries:list"))
    for query in queries:
        visit(owner, reverse("queries:detail", args=[query.pk]))
        visit(owner, reverse("queries:progress", args=[query.pk]))
        if query.containers.exists():
            visit(owner, reverse("queries:export_containers_csv", args=[query.pk]))
            visit(owner, reverse("queries:export_containers_xlsx", args=[query.pk]))
        for stored in query.files.all():
            visit(owner, reverse("queries:file", args=[query.pk, stored.pk]))
    visit(Client(), reverse("healthz"), 200, 503)
    # Error pages as production renders them.
    settings.DEBUG = False
    visit(owner, reverse("queries:detail", args=[max(q.pk for q in queries) + 1]), 404)
    visit(owner, "/no-such-page/", 404)
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(account.user)
    refused = guarded.post(reverse("queries:start"), {"kind": "containers"})
    assert refused.status_code == 403
    pages["csrf"] = refused.content
    bad_host = owner.get(reverse("queries:list"), HTTP_HOST="evil.example")
    assert bad_host.status_code == 400
    pages["bad host"] = bad_host.content
    failing = Client(raise_request_exception=False)
    failing.force_login(account.user)
    crashed = failing.get("/failing-view/")
    assert crashed.status_code == 500
    pages["500"] = crashed.content

    texts = {
        "pages": "\n".join(
            xlsx_text(body) if body.startswith(b"PK") else body.decode("utf-8", "replace")
            for body in pages.values()
        ),
        "database": dump_database(),
        "task arguments": "\n".join(tasks) + repr(task_queue.drain()),
        "logs": log_lines(caplog.records),
        "exceptions": "\n".join(exception_text(exc) for exc in matrix.failures),
        "query errors": "\n".join(q.error for q in Query.objects.all()),
    }
    for canary in (password, key, *session_ids):
        for name, text in texts.items():
            assert canary not in text, f"a secret is in the {name}"

    # The scan saw what it had to: many sessions, every outcome, every page.
    assert len(session_ids) >= 5
    assert {type(exc).__name__ for exc in matrix.failures} >= {
        "UpstreamUnavailable",
        "UpstreamRejected",
        "SessionGone",
        "UpstreamTimeout",
        "SessionUnavailable",
        "AccountRejected",
        "CaptchaBudgetReached",
        "CircuitOpen",
    }
    outcomes = {(q.kind, q.status) for q in queries}
    assert ("availability", Query.Status.SUCCEEDED) in outcomes
    assert ("containers", Query.Status.FAILED) in outcomes  # rejected credentials
    assert ("appointments", Query.Status.CANCELLED) in outcomes
    errors = " | ".join(q.error for q in queries)
    for reason in (
        "not found",
        "gave up after 3 tries",
        "Booking number validation failed",
        "refused the account's user name or password",
    ):
        assert reason in errors, errors
    assert "LoginErrorType.VPN_REQUIRED" in texts["database"]  # the refusal's reason was stored
    assert "canary" in texts["pages"] and "Something went wrong" in texts["pages"]  # 500.html
    assert "a view failed while holding 2 credentials" in texts["logs"]
