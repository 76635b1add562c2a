"""What an attacker or a careless user could do to the query engine and the upstream client:
steps whose results cannot be stored, huge or odd inputs, redirecting upstreams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from emodal_sim.data import containers_for
from queries_app.models import AppointmentCheck, Query
from queries_app.services import MAX_BULK_CONTAINERS, start_query, validate_params
from sessions_app.models import Account
from sessions_app.upstream import EModalClient, UpstreamError

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_through_retries

pytestmark = pytest.mark.django_db(transaction=True)


# -- a step whose results cannot be stored ends, it does not loop ---------------------------------


@pytest.fixture
def refused_inserts() -> Iterator[Any]:
    """Make the database itself refuse inserts into a table (a trigger, on SQLite and on
    PostgreSQL): the way a step's write fails in production — a constraint, a value too long."""
    made: list[str] = []

    def refuse(table: str) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "CREATE OR REPLACE FUNCTION refuse_insert() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'insert refused'; END $$ LANGUAGE plpgsql"
                )
                cursor.execute(
                    f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
                )
            else:
                cursor.execute(
                    f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'insert refused'); END"
                )
        made.append(table)

    yield refuse
    with connection.cursor() as cursor:
        for table in made:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS refuse_insert ON {table}")
            else:
                cursor.execute("DROP TRIGGER IF EXISTS refuse_insert")


def test_a_step_whose_results_cannot_be_stored_fails_after_its_tries(
    alice: Account, sim: SimControl, sim_server: Any, task_queue: TaskQueue, refused_inserts: Any
) -> None:
    refused_inserts("queries_app_containerinfo")
    numbers = [c["Container #"] for c in containers_for(alice.emodal_username, sim_server.config)]
    query, _ = start_query(
        account=alice, kind="bulk_info", params={"import_containers": numbers[:2]}
    )
    query = run_through_retries(query, task_queue)
    assert query.status == Query.Status.FAILED
    assert query.error.startswith("The results of step “bulk_info” could not be stored (")
    assert query.error.endswith("(gave up after 3 tries)")
    # One upstream call per try, never a loop.
    assert len(sim.calls("/get_info_bulk")) == 3
    assert query.attempts == 3
    assert not query.infos.exists()


def test_an_availability_run_whose_check_cannot_be_stored_ends_with_a_readable_reason(
    alice: Account, sim: SimControl, task_queue: TaskQueue, refused_inserts: Any
) -> None:
    refused_inserts("queries_app_appointmentcheck")
    query = run_through_retries(start_query(account=alice, kind="availability")[0], task_queue)
    assert query.status == Query.Status.FAILED
    assert "could not be stored" in query.error
    # The first container's check was tried three times at most (not at all when its
    # terminal has no name), then recording its failure failed too: nothing more was sent.
    assert len(sim.calls("/check_appointments")) <= 3
    assert query.step == "appointment_check"


def test_the_same_container_in_both_bulk_lists_is_refused_up_front(alice: Account) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_params(
            account=alice,
            kind="bulk_info",
            params={"import_containers": ["MSCU1234567"], "export_containers": "mscu1234567"},
        )
    assert caught.value.message_dict["export_containers"] == [
        "A container is either an import or an export, not both: MSCU1234567."
    ]


def test_a_bulk_query_made_with_a_container_in_both_lists_still_stores_it_once(
    alice: Account, sim: SimControl, task_queue: TaskQueue, sim_server: Any
) -> None:
    number = containers_for(alice.emodal_username, sim_server.config)[0]["Container #"]
    # As an older row, made before the lists were checked against each other.
    query = Query.objects.create(
        account=alice,
        kind="bulk_info",
        step="bulk_info",
        params={"import_containers": [number], "export_containers": [number]},
    )
    from queries_app.engine import enqueue_step

    enqueue_step(query_id=query.pk)
    query = run_through_retries(query, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    assert list(query.infos.values_list("container_number", flat=True)) == [number]
    assert len(sim.calls("/get_info_bulk")) == 1


@pytest.mark.parametrize(
    ("booking", "message"),
    [
        ("BKG/../../etc/passwd", "A booking number has only letters, digits and dashes."),
        ("B" * 41, "A booking number has at most 40 characters."),
        ("", "An export check needs the booking number."),
    ],
)
def test_bad_booking_numbers_are_refused_before_a_query_starts(
    alice: Account, booking: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_params(
            account=alice,
            kind="appointment_check",
            params={
                "container_type": "export",
                "booking_number": booking,
                "terminal": "TTI",
                "move_type": "DROP FULL",
            },
        )
    assert caught.value.message_dict["booking_number"] == [message]


def test_a_long_booking_number_is_stored_whole_on_its_check(
    alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    booking = "BK" + "7" * 36  # 38 characters: more than a container number's column
    query, _ = start_query(
        account=alice,
        kind="appointment_check",
        params={
            "container_type": "export",
            "booking_number": booking,
            "terminal": "TTI",
            "move_type": "DROP FULL",
        },
    )
    query = run_through_retries(query, task_queue)
    assert query.status == Query.Status.SUCCEEDED, query.error
    check = AppointmentCheck.objects.get(query=query)
    assert (check.booking_number, check.container_number) == (booking, "")
    assert len(sim.calls("/check_appointments")) == 1
    # The screenshot is named by the portal, never after upstream or user text.
    if check.screenshot is not None:
        assert check.screenshot.name == "check-1.png"


# -- huge and odd input ----------------------------------------------------------------------------


def test_a_hundred_thousand_containers_are_refused_by_their_count_alone(alice: Account) -> None:
    huge = [f"not-a-number-{i}" for i in range(100_000)]
    with pytest.raises(ValidationError) as caught:
        validate_params(account=alice, kind="bulk_info", params={"import_containers": huge})
    # Refused on its size: no item was looked at (each would have been reported as wrong).
    assert caught.value.message_dict["import_containers"] == [
        f"At most {MAX_BULK_CONTAINERS} containers at once (got 100000)."
    ]


def test_many_wrong_numbers_are_reported_in_a_few_lines(alice: Account) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_params(
            account=alice,
            kind="bulk_info",
            params={"import_containers": [f"BAD{i}" for i in range(50)]},
        )
    messages = caught.value.message_dict["import_containers"]
    assert len(messages) == 3
    assert messages[-1].endswith("(47 more like these)")


@pytest.mark.parametrize("number", ["MSCU١٢٣٤٥٦٧", "MSCU１２３４５６７"])
def test_unicode_digits_are_not_container_digits(alice: Account, number: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_params(account=alice, kind="timeline", params={"container_id": number})
    assert "is not a container number" in caught.value.message_dict["container_id"][0]


# -- redirects are never followed ------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Either redirects every request (to `target`) or records it and serves a file."""

    target = ""
    seen: list[tuple[str, str, bytes]]

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, body))
        if self.target:
            self.send_response(307 if self.command == "POST" else 302)
            self.send_header("Location", f"{self.target}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b'{"success": true, "session_id": "session_1_2", "is_new": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer


@pytest.fixture
def redirecting_upstream() -> Iterator[tuple[str, list[Any], list[Any]]]:
    """An "upstream" that redirects everything to a "foreign host" (both on loopback); yields
    (upstream url, what the upstream saw, what the foreign host saw)."""
    servers = []
    seen: dict[str, list[Any]] = {"upstream": [], "foreign": []}
    for name, target in (("foreign", ""), ("upstream", None)):
        handler = type(name, (_Recorder,), {"seen": seen[name], "target": target or ""})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        if name == "foreign":
            foreign_url = f"http://127.0.0.1:{server.server_address[1]}"
        else:
            handler.target = foreign_url
    upstream = f"http://127.0.0.1:{servers[1].server_address[1]}"
    yield upstream, seen["upstream"], seen["foreign"]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_redirected_login_sends_no_credentials_elsewhere(redirecting_upstream: Any) -> None:
    url, upstream_saw, foreign_saw = redirecting_upstream
    api = EModalClient(url)
    with pytest.raises(UpstreamError, match=r"redirect \(HTTP 307\); redirects are never followed"):
        api.get_session(username="dora", password="dora-secret", captcha_api_key="dora-key")
    assert len(upstream_saw) == 1
    assert foreign_saw == []


def test_a_redirected_file_download_fetches_nothing_from_elsewhere(
    redirecting_upstream: Any,
) -> None:
    import io

    url, upstream_saw, foreign_saw = redirecting_upstream
    api = EModalClient(url)
    buffer = io.BytesIO()
    with pytest.raises(UpstreamError, match=r"redirect \(HTTP 302\)") as caught:
        api.download_file(f"{url}/files/session_1_2/containers_scraped_1.xlsx", buffer)
    assert buffer.getvalue() == b""
    assert foreign_saw == []
    assert "session_1_2" not in str(caught.value)  # a file's path holds a session id
