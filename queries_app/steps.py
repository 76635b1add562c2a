"""The steps queries are made of. A step makes at most one upstream operation (through the
SessionManager), parses what came back, and returns an outcome: the rows to write and where
the query goes next. Writing happens later, in the engine's short transaction, only if the
step still holds its claim on the query — so a step that is run again writes the same rows
(it deletes its own earlier rows first) and never duplicates them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.db import connections, models, router, transaction
from django.db.models import Min
from django.utils import timezone

from sessions_app.models import Account
from sessions_app.services import SessionManager
from sessions_app.upstream import EModalClient, UpstreamError, UpstreamRejected, UpstreamUnavailable

from . import parsing
from .models import (
    AppointmentCheck,
    AppointmentRow,
    ContainerChange,
    ContainerInfo,
    ContainerRow,
    Query,
    QueryFile,
    Terminal,
)
from .xlsx import SheetError

logger = logging.getLogger(__name__)

DONE = ""  # the step after the last one

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class QueryFailed(Exception):
    """The query cannot succeed; the text is the readable reason shown to users."""


@dataclass
class Outcome:
    next_step: str
    write: Callable[[], None] | None = None
    progress_done: int | None = None
    progress_total: int | None = None
    state: dict[str, Any] | None = None
    # Something the query's page should say though the query goes on (kept on `error`).
    note: str = ""


@dataclass
class StepContext:
    query: Query
    manager: SessionManager
    files: list[tuple[str, str, bytes, str]] = field(default_factory=list)

    def call(self, operation: Callable[[EModalClient, str], Any]) -> Any:
        return self.manager.run(self.query.account, operation)

    def download(self, file_url: str) -> bytes:
        buffer = io.BytesIO()
        self.manager.client_for(self.query.account).download_file(file_url, buffer)
        return buffer.getvalue()


def save_file(query: Query, kind: str, name: str, content: bytes, content_type: str) -> QueryFile:
    QueryFile.objects.filter(query=query, name=name).delete()
    stored = QueryFile(
        query=query, kind=kind, name=name, size=len(content), content_type=content_type
    )
    stored.file.save(f"{query.pk}-{name}", ContentFile(content), save=False)
    stored.save()
    return stored


# -- containers ---------------------------------------------------------------------------------


def container_rows(content: bytes) -> dict[str, dict[str, Any]]:
    """The containers sheet's rows as ContainerRow field values, by container number (the
    first row of a number counts). A file that cannot be read fails the query."""
    width = ContainerRow._meta.get_field("container_number").max_length
    rows: dict[str, dict[str, Any]] = {}
    try:
        for raw in parsing.sheet_rows(io.BytesIO(content)):
            fields = parsing.container_fields(raw)
            if fields["container_number"]:
                # Keyed as stored (see insert_rows), so two rows can never collide there.
                rows.setdefault(fields["container_number"][:width], fields)
    except SheetError as exc:
        raise QueryFailed(f"The containers sheet cannot be read: {exc}.") from None
    return rows


def store_container_rows(query: Query, rows: dict[str, dict[str, Any]], content: bytes) -> None:
    """Replace the query's container rows and sheet file, all or nothing."""
    with transaction.atomic():
        ContainerRow.objects.filter(query=query).delete()
        insert_rows(ContainerRow, ({"query": query.pk, **fields} for fields in rows.values()))
        save_file(query, QueryFile.Kind.CONTAINERS_SHEET, "containers.xlsx", content, XLSX)


# Fields whose Python value (str, bool or None, a primary key) is already what every database
# driver takes: get_db_prep_save would hand it back unchanged, at a microsecond a call.
_AS_IS = {"CharField", "TextField", "BooleanField", "ForeignKey"}


def insert_rows(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> None:
    """INSERT rows given as {field name: value} (a foreign key by its id) with one statement
    run for each row (executemany), for every field but the primary key. bulk_create builds a
    model instance per row and prepares every value through its field; on SQLite it also cuts
    the rows into INSERTs of 999 parameters. Text longer than its column is cut to fit, as
    PostgreSQL would otherwise refuse it (the row's raw values keep it whole). No pre_save:
    not for models with auto_now or similar fields."""
    connection = connections[router.db_for_write(model)]
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    plan = [
        (
            field.name,
            field.max_length if field.get_internal_type() == "CharField" else None,
            None if field.get_internal_type() in _AS_IS else field.get_db_prep_save,
        )
        for field in fields
    ]
    params = []
    for row in rows:
        values = []
        for name, width, prepare in plan:
            value = row[name]
            if width is not None and value is not None and len(value) > width:
                value = value[:width]
            elif prepare is not None:
                value = prepare(value, connection)
            values.append(value)
        params.append(values)
    if not params:
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Only names from the model's options and placeholders go into the text.
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


TERMINAL_FIELDS = ("origin", "destination", "current_location")


def terminal_codes(rows: dict[str, dict[str, Any]]) -> set[str]:
    """The terminal codes a sheet names (masked cells are no code)."""
    return {
        code
        for fields in rows.values()
        for code in (fields[name] for name in TERMINAL_FIELDS)
        if code and not parsing.is_hidden(code)
    }


def note_terminal_codes(codes: set[str]) -> None:
    """Record when sheets named these codes; a code never seen before is added with no name,
    so that staff see it in the admin and can name it."""
    if not codes:
        return
    now = timezone.now()
    Terminal.objects.bulk_create(
        [Terminal(code=code[:20], first_seen_at=now, last_seen_at=now) for code in codes],
        ignore_conflicts=True,
    )
    Terminal.objects.filter(code__in=codes).update(last_seen_at=now)
    Terminal.objects.filter(code__in=codes, first_seen_at__isnull=True).update(first_seen_at=now)


def containers(ctx: StepContext) -> Outcome:
    try:
        meta = ctx.call(lambda api, sid: api.get_containers(sid))
    except UpstreamRejected as exc:
        raise QueryFailed(f"E-Modal gave no containers sheet: {exc.readable()}") from None
    content = ctx.download(meta["file_url"])
    rows = container_rows(content)
    codes = terminal_codes(rows)
    query = ctx.query

    def write() -> None:
        store_container_rows(query, rows, content)
        note_terminal_codes(codes)

    if query.kind == Query.Kind.CONTAINERS:
        return Outcome(next_step="changes", write=write, progress_done=1, progress_total=1)
    # The availability run goes on with the containers the customer's rule selects.
    candidates = [
        {
            "container": number,
            "trade_type": fields["trade_type"],
            **{name: fields[name] for name in TERMINAL_FIELDS},
            "line": fields["line"],
            "size_type": fields["size_type"],
        }
        for number, fields in rows.items()
        if parsing.is_availability_candidate(fields)
    ]
    return Outcome(
        next_step="bulk_info" if candidates else "appointments",
        write=write,
        progress_done=0,
        progress_total=len(candidates),
        state={"candidates": candidates},
    )


# -- bulk info ----------------------------------------------------------------------------------


def _infos_from_bulk(query: Query, body: dict[str, Any]) -> list[ContainerInfo]:
    results = body.get("results") or {}

    def info(item: dict[str, Any], trade_type: str, **fields: Any) -> ContainerInfo:
        return ContainerInfo(
            query=query,
            container_number=parsing.normalise_container_number(item.get("container_id", "")),
            trade_type=trade_type,
            success=bool(item.get("success")),
            error=str(item.get("error") or "")[:255],
            **fields,
        )

    infos = []
    seen: set[str] = set()

    def first(item: Any) -> bool:
        """One row per container (the upstream may repeat one); the first counts."""
        if not isinstance(item, dict):
            return False
        number = parsing.normalise_container_number(str(item.get("container_id") or ""))
        if not number or number in seen:
            return False
        seen.add(number)
        return True

    for item in filter(first, results.get("import_results") or []):
        timeline = item.get("timeline") or []
        pregate = item.get("pregate_status")
        infos.append(
            info(
                item,
                "IMPORT",
                passed_pregate=pregate if isinstance(pregate, bool) else None,
                pregate_details=str(item.get("pregate_details") or "")[:255],
                milestones=timeline,
                **parsing.milestone_dates(timeline),
            )
        )
    for item in filter(first, results.get("export_results") or []):
        booking = parsing.cell(item.get("booking_number"))[:40]
        infos.append(info(item, "EXPORT", booking_number=booking))
    return infos


def _write_infos(query: Query, infos: list[ContainerInfo]) -> Callable[[], None]:
    def write() -> None:
        numbers = [info.container_number for info in infos]
        ContainerInfo.objects.filter(query=query, container_number__in=numbers).delete()
        ContainerInfo.objects.bulk_create(infos, batch_size=1000)

    return write


def bulk_info(ctx: StepContext) -> Outcome:
    query = ctx.query
    if query.kind == Query.Kind.BULK_INFO:
        imports = query.params.get("import_containers", [])
        exports = query.params.get("export_containers", [])
    else:
        candidates = query.state["candidates"]
        imports = [c["container"] for c in candidates if c["trade_type"] != "EXPORT"]
        exports = [c["container"] for c in candidates if c["trade_type"] == "EXPORT"]
    body = ctx.call(
        lambda api, sid: api.get_info_bulk(
            sid, import_containers=imports, export_containers=exports
        )
    )
    infos = _infos_from_bulk(query, body)
    write = _write_infos(query, infos)
    if query.kind == Query.Kind.BULK_INFO:
        return Outcome(next_step=DONE, write=write, progress_done=1, progress_total=1)
    by_number = {info.container_number: info for info in infos}
    checks = [plan_check(c, by_number.get(c["container"])) for c in query.state["candidates"]]
    return Outcome(
        next_step="appointment_check" if checks else "appointments",
        write=write,
        progress_done=0,
        progress_total=len(checks),
        state={**query.state, "checks": checks},
    )


def plan_check(candidate: dict[str, Any], info: ContainerInfo | None) -> dict[str, Any]:
    """Move type and terminal for one container, as operators decide them (the contract's
    "full availability query"): an import not through pregate is picked up full at its
    Destination; one through pregate drops its empty at its Origin; an export drops full at
    its Origin; each falls back to Current Loc when that cell is empty. The terminal is kept
    as a code: it is named (the appointment page wants names) when the check runs."""
    current = candidate.get("current_location", "")
    if candidate["trade_type"] == "EXPORT":
        return {
            "container": candidate["container"],
            "container_type": "export",
            "move_type": "DROP FULL",
            "terminal_code": candidate["origin"] or current,
            "booking_number": info.booking_number if info else "",
        }
    through_pregate = bool(info and info.passed_pregate)
    terminal = candidate["origin"] if through_pregate else candidate["destination"]
    return {
        "container": candidate["container"],
        "container_type": "import",
        "move_type": "DROP EMPTY" if through_pregate else "PICK FULL",
        "terminal_code": terminal or current,
        "booking_number": "",
        "line": candidate.get("line", ""),
        "equip_size": candidate.get("size_type", ""),
    }


# -- appointment checks -------------------------------------------------------------------------


def terminal_name(code: str) -> str | None:
    """The E-Modal name of an active terminal code, if staff have given it one."""
    return (
        Terminal.objects.filter(code=code, active=True)
        .exclude(name="")
        .values_list("name", flat=True)
        .first()
    )


def _check_items(query: Query) -> list[dict[str, Any]]:
    if query.kind == Query.Kind.APPOINTMENT_CHECK:
        params = query.params
        return [
            {
                "container": params.get("container_id", ""),
                "container_type": params["container_type"],
                "move_type": params["move_type"],
                "terminal_code": params["terminal"],
                "booking_number": params.get("booking_number", ""),
                "line": params.get("line", ""),
                "equip_size": params.get("equip_size", ""),
            }
        ]
    return query.state["checks"]


def _check_index(query: Query) -> int:
    return 0 if query.kind == Query.Kind.APPOINTMENT_CHECK else query.progress_done


def _after_check(query: Query, done: int) -> tuple[str, int]:
    if query.kind == Query.Kind.APPOINTMENT_CHECK:
        return DONE, 1
    return ("appointment_check" if done < query.progress_total else "appointments"), done


def _write_checks(
    query: Query, checks: list[AppointmentCheck], screenshot: tuple[str, bytes] | None = None
) -> Callable[[], None]:
    def write() -> None:
        for check in checks:
            AppointmentCheck.objects.filter(
                query=query, container_number=check.container_number
            ).delete()
        if screenshot:
            # Named by the portal (never by upstream or user text).
            checks[0].screenshot = save_file(
                query, QueryFile.Kind.SCREENSHOT, screenshot[0], screenshot[1], "image/png"
            )
        AppointmentCheck.objects.bulk_create(checks)

    return write


def _new_check(query: Query, item: dict[str, Any], **outcome: Any) -> AppointmentCheck:
    return AppointmentCheck(
        query=query,
        container_number=item["container"],
        trade_type=item["container_type"].upper(),
        move_type=item["move_type"],
        terminal_code=item.get("terminal_code", ""),
        booking_number=item["booking_number"],
        **outcome,
    )


def _not_sent(query: Query, item: dict[str, Any], reason: str) -> AppointmentCheck:
    return _new_check(
        query, item, success=False, outcome=AppointmentCheck.Outcome.NOT_SENT, error=reason[:255]
    )


def _stop_checks(query: Query, items: list[dict[str, Any]], index: int, reason: str) -> Outcome:
    """The account's own set-up makes every remaining check fail the same way: record them
    as not sent, and go on with the run's next step."""
    checks = [_not_sent(query, item, f"Not checked: {reason}") for item in items[index:]]
    next_step, done = _after_check(query, len(items))
    return Outcome(next_step, _write_checks(query, checks), progress_done=done)


# The appointment page refuses a field of the account (the same for every container): which
# field, by the words of its Phase failure.
ACCOUNT_FIELDS_REFUSED = {"trucking company": "trucking company", "truck plate": "truck plate"}


def refused_account_field(error: UpstreamError) -> str | None:
    """ "trucking company" or "truck plate" when the page refused that account field."""
    text = f"{error.message} {error.details}".lower()
    if "truck_plate" in text:
        return "truck plate"
    if "phase" not in text:
        return None
    return next((field for words, field in ACCOUNT_FIELDS_REFUSED.items() if words in text), None)


def appointment_check(ctx: StepContext) -> Outcome:
    query = ctx.query
    items, index = _check_items(query), _check_index(query)
    item = items[index]
    next_step, done = _after_check(query, index + 1)
    account = Account.objects.defer(*Account.SECRET_FIELDS).get(pk=query.account_id)
    if account.appointment_error:
        return _stop_checks(query, items, index, account.appointment_error)
    if item["container_type"] == "export" and not item["booking_number"]:
        check = _not_sent(query, item, "No booking number is known for this export container.")
        return Outcome(next_step, _write_checks(query, [check]), progress_done=done)
    code = item.get("terminal_code", "")
    name = terminal_name(code) if code else None
    if name is None:
        if not code:
            reason = "No terminal is known for it (the sheet's terminal cells are N/A)."
        else:
            reason = (
                f"Terminal code {code} has no E-Modal name: add its name under Admin › "
                "Terminals, then run again."
            )
        if query.kind == Query.Kind.APPOINTMENT_CHECK:
            raise QueryFailed(reason)
        check = _not_sent(query, item, reason)
        return Outcome(next_step, _write_checks(query, [check]), progress_done=done)
    check = _new_check(query, item, terminal=name)
    fields: dict[str, Any] = {
        "container_type": item["container_type"],
        "trucking_company": account.trucking_company,
        "terminal": name,
        "move_type": item["move_type"],
        "truck_plate": account.truck_plate,
        "own_chassis": account.own_chassis,
    }
    if item["container_type"] == "export":
        fields["booking_number"] = item["booking_number"]
    else:
        fields["container_id"] = item["container"]
        # Some terminals' pages have no container field and need these to find it.
        fields["line"] = item.get("line") or None
        fields["equip_size"] = item.get("equip_size") or None
    try:
        body = ctx.call(lambda api, sid: api.check_appointments(sid, **fields))
    except UpstreamRejected as exc:
        refused = refused_account_field(exc)
        if refused is not None:
            reason = (
                f"E-Modal's appointment page refused the account's {refused} "
                f"({exc.readable()}); fix it on the E-Modal account in the admin"
            )[:255]
            Account.objects.filter(pk=account.pk).update(appointment_error=reason)
            logger.warning("account %s: appointment checks stopped (%s)", account.pk, refused)
        if query.kind == Query.Kind.APPOINTMENT_CHECK:
            raise QueryFailed(f"Appointment check failed: {exc.readable()}") from None
        check.success = False
        check.outcome = AppointmentCheck.Outcome.FAILED
        check.error = exc.readable()[:255]
        if refused is not None:
            rest = _stop_checks(query, items, index + 1, reason)
            inner = rest.write

            def write() -> None:
                _write_checks(query, [check])()
                inner()

            return Outcome(rest.next_step, write, progress_done=rest.progress_done)
        return Outcome(next_step, _write_checks(query, [check]), progress_done=done)
    if item["container_type"] == "import":
        texts, slots = parsing.available_slots(body.get("available_times") or [])
        check.slot_texts = texts
        check.slots = [start.isoformat() for start, _ in slots]
        check.slot_count = len(texts)
        check.earliest_slot = slots[0][0] if slots else None
        available = bool(texts)
    else:
        check.calendar_found = bool(body.get("calendar_found"))
        available = check.calendar_found
    check.outcome = (
        AppointmentCheck.Outcome.AVAILABLE if available else AppointmentCheck.Outcome.NONE
    )
    screenshot = None
    url = body.get("dropdown_screenshot_url") or body.get("calendar_screenshot_url")
    if url:
        try:
            screenshot = (f"check-{index + 1}.png", ctx.download(url))
        except UpstreamError as exc:
            logger.warning("Query %s: screenshot not kept: %s", query.pk, exc.readable())
    return Outcome(next_step, _write_checks(query, [check], screenshot), progress_done=done)


def give_up_check(query: Query, reason: str) -> Outcome:
    """After repeated passing failures on one container: record them against it, go on."""
    index = _check_index(query)
    item = _check_items(query)[index]
    next_step, done = _after_check(query, index + 1)
    check = _new_check(
        query, item, success=False, outcome=AppointmentCheck.Outcome.FAILED, error=reason[:255]
    )
    return Outcome(next_step, _write_checks(query, [check]), progress_done=done)


# -- appointments -------------------------------------------------------------------------------


def appointments(ctx: StepContext) -> Outcome:
    query = ctx.query
    body = ctx.call(lambda api, sid: api.get_appointments(sid))
    content = ctx.download(body["file_url"])
    try:
        header, raw_rows = parsing.read_sheet(io.BytesIO(content))
        if not parsing.is_appointments_header(header):
            # When its export fails the upstream hands back the newest sheet its browser
            # downloaded (often the containers sheet): worth another try, never stored.
            raise UpstreamUnavailable(
                "E-Modal handed back another spreadsheet instead of the appointments export "
                f"(columns: {', '.join(name for name in header if name)[:120] or 'none'})"
            )
        rows = [
            {"query": query.pk, "row_number": n, **parsing.appointment_fields(raw)}
            for n, raw in enumerate(raw_rows, start=1)
        ]
    except SheetError as exc:
        raise QueryFailed(f"The appointments sheet cannot be read: {exc}.") from None

    def write() -> None:
        AppointmentRow.objects.filter(query=query).delete()
        insert_rows(AppointmentRow, rows)
        save_file(query, QueryFile.Kind.APPOINTMENTS_SHEET, "appointments.xlsx", content, XLSX)

    if query.kind == Query.Kind.APPOINTMENTS:
        return Outcome(next_step=DONE, write=write, progress_done=1, progress_total=1)
    return Outcome(next_step="changes", write=write)


def give_up_appointments(query: Query, reason: str) -> Outcome:
    """An availability run whose appointments sheet keeps failing keeps its checks: it goes on
    without the sheet, saying so."""
    return Outcome(next_step="changes", note=f"The account's appointments were not read: {reason}")


# -- single containers ---------------------------------------------------------------------------


def timeline(ctx: StepContext) -> Outcome:
    query = ctx.query
    number = query.params["container_id"]
    try:
        body = ctx.call(lambda api, sid: api.get_container_timeline(sid, container_id=number))
    except UpstreamRejected as exc:
        raise QueryFailed(f"Container {number}: {exc.readable()}") from None
    items = body.get("timeline") or []
    info = ContainerInfo(
        query=query,
        container_number=number,
        passed_pregate=body.get("passed_pregate")
        if isinstance(body.get("passed_pregate"), bool)
        else None,
        milestones=items,
        **parsing.milestone_dates(items),
    )
    return Outcome(DONE, _write_infos(query, [info]), progress_done=1, progress_total=1)


def booking_number(ctx: StepContext) -> Outcome:
    query = ctx.query
    number = query.params["container_id"]
    try:
        body = ctx.call(lambda api, sid: api.get_booking_number(sid, container_id=number))
    except UpstreamRejected as exc:
        raise QueryFailed(f"Container {number}: {exc.readable()}") from None
    booking = body.get("booking_number")
    info = ContainerInfo(
        query=query,
        container_number=number,
        booking_number=str(booking or "")[:40],
        success=bool(booking),
        error="" if booking else str(body.get("message") or "No booking number for it.")[:255],
    )
    return Outcome(DONE, _write_infos(query, [info]), progress_done=1, progress_total=1)


# -- change detection ---------------------------------------------------------------------------

COMPARED = {
    "status": "status",
    "holds": "holds",
    "last_free_day": "last free day",
    "pregate_ticket": "pregate",
}


def _snapshot(query: Query) -> dict[str, dict[str, Any]]:
    rows = {
        row["container_number"]: row
        for row in query.containers.values("container_number", *COMPARED)
    }
    slots = query.checks.values("container_number").annotate(earliest=Min("earliest_slot"))
    for item in slots:
        if item["container_number"] in rows:
            rows[item["container_number"]]["earliest_slot"] = item["earliest"]
    return rows


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def changes(ctx: StepContext) -> Outcome:
    """What changed for each container since the account's previous successful query of the
    same kind (no upstream call)."""
    query = ctx.query
    previous = (
        Query.objects.filter(
            account=query.account,
            kind=query.kind,
            status=Query.Status.SUCCEEDED,
            created_at__lt=query.created_at,
        )
        .order_by("-created_at", "-id")
        .first()
    )
    found: list[ContainerChange] = []
    if previous is not None:
        now, before = _snapshot(query), _snapshot(previous)
        compared = {**COMPARED, "earliest_slot": "earliest slot"}
        for number, row in now.items():
            old = before.get(number)
            if old is None:
                found.append(
                    ContainerChange(change=ContainerChange.Change.NEW, container_number=number)
                )
                continue
            diff = {
                label: [_jsonable(old.get(name)), _jsonable(row.get(name))]
                for name, label in compared.items()
                if old.get(name) != row.get(name)
            }
            if diff:
                found.append(
                    ContainerChange(
                        change=ContainerChange.Change.CHANGED, container_number=number, fields=diff
                    )
                )
        found.extend(
            ContainerChange(change=ContainerChange.Change.GONE, container_number=number)
            for number in before.keys() - now.keys()
        )
    for change in found:
        change.query, change.previous_query = query, previous

    def write() -> None:
        ContainerChange.objects.filter(query=query).delete()
        ContainerChange.objects.bulk_create(found, batch_size=1000)

    return Outcome(DONE, write)


STEPS: dict[str, Callable[[StepContext], Outcome]] = {
    "containers": containers,
    "bulk_info": bulk_info,
    "appointment_check": appointment_check,
    "appointments": appointments,
    "timeline": timeline,
    "booking_number": booking_number,
    "changes": changes,
}

# What to record when a step keeps failing for passing reasons: the per-container steps
# give up on that container only; every other step fails the query.
GIVE_UP: dict[str, Callable[[Query, str], Outcome]] = {
    "appointment_check": give_up_check,
    "appointments": give_up_appointments,
}

# Typical upstream seconds of each step (the contract's timings), to tell a long query from a
# short one when choosing which step to run next; only their proportions matter.
STEP_SECONDS = {
    "containers": 165,
    "bulk_info_per_container": 7,
    "appointment_check": 35,
    "appointments": 20,
    "timeline": 8,
    "booking_number": 8,
    "changes": 0,
}
# An availability run's containers to check, before its container list is known.
UNKNOWN_CHECKS = 40


def work_left(query: Query) -> int:
    """Estimated upstream seconds a query still needs, from its next step on."""
    kind, step, state = query.kind, query.step, query.state or {}
    done, total = query.progress_done, query.progress_total
    if step == DONE:
        return 0
    if kind == Query.Kind.AVAILABILITY:
        tail = STEP_SECONDS["appointments"]
        per_check = STEP_SECONDS["appointment_check"]
        bulk = STEP_SECONDS["bulk_info_per_container"]
        if step == "containers":
            return STEP_SECONDS["containers"] + (bulk + per_check) * UNKNOWN_CHECKS + tail
        if step == "bulk_info":
            return (bulk + per_check) * len(state.get("candidates", [])) + tail
        if step == "appointment_check":
            return per_check * max(total - done, 0) + tail
        return STEP_SECONDS.get(step, 0)
    if kind == Query.Kind.BULK_INFO and step == "bulk_info":
        params = query.params or {}
        count = len(params.get("import_containers", [])) + len(params.get("export_containers", []))
        return STEP_SECONDS["bulk_info_per_container"] * max(count, 1)
    return STEP_SECONDS.get(step, 0)


FIRST_STEP: dict[str, str] = {
    Query.Kind.AVAILABILITY: "containers",
    Query.Kind.CONTAINERS: "containers",
    Query.Kind.APPOINTMENTS: "appointments",
    Query.Kind.TIMELINE: "timeline",
    Query.Kind.BOOKING_NUMBER: "booking_number",
    Query.Kind.BULK_INFO: "bulk_info",
    Query.Kind.APPOINTMENT_CHECK: "appointment_check",
}
