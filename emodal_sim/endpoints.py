"""The public E-Modal automation API endpoints, independent of the HTTP plumbing."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import data
from .config import INVALID_BOOKING_PREFIX
from .state import (
    CREDENTIAL_FIELDS,
    STALE_ELEMENT_ERROR,
    ApiError,
    Call,
    Session,
    SimState,
    closed_error,
    naive_local,
    new_token,
    secret_free,
)

SERVICE_NAME = "E-Modal Business API"
SERVICE_VERSION = "1.0.0"

NO_CONTAINERS_ERROR = "Download failed: No container data extracted"
SEARCH_FAILED_ERROR = "Search failed: container not found"
PREGATE_MISSING_ERROR = "Pregate status check failed: Pregate milestone not found"
BULK_EMPTY_ERROR = "At least one of 'import_containers' or 'export_containers' must be provided"
EXCEL_FAILED_ERROR = "Excel download failed"
CONTAINER_FIELD_ERROR = (
    "Phase 1 failed - Container field not found. Please provide 'line' and 'equip_size' to continue"
)
CHECK_SEARCH_FAILED_ERROR = "Phase 1 failed - Search failed: container not found"
PHASE1_FIELDS = ("trucking_company", "terminal", "move_type")
PLATE_RE = re.compile(r"[A-Za-z0-9]{2,10}")
# Share of a check's fixed waits spent before the Phase-1 fields are looked at (~35 s).
PHASE1_SHARE = {"import": 35 / 45, "export": 35 / 50}

HTML_PAGES = {
    404: (
        "404 Not Found",
        "Not Found",
        "The requested URL was not found on the server. If you entered the URL manually "
        "please check your spelling and try again.",
    ),
    405: (
        "405 Method Not Allowed",
        "Method Not Allowed",
        "The method is not allowed for the requested URL.",
    ),
    500: (
        "500 Internal Server Error",
        "Internal Server Error",
        "The server encountered an internal error and was unable to complete your request. "
        "Either the server is overloaded or there is an error in the application.",
    ),
}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: dict[str, Any], status: int = 200) -> Response:
        return cls(status, json.dumps(payload).encode())

    @classmethod
    def html(cls, status: int) -> Response:
        """The page Flask/Werkzeug answers for an unknown route, a wrong method, a crash."""
        title, heading, text = HTML_PAGES[status]
        page = (
            f"<!doctype html>\n<html lang=en>\n<title>{title}</title>\n"
            f"<h1>{heading}</h1>\n<p>{text}</p>\n"
        )
        return cls(status, page.encode(), "text/html; charset=utf-8")

    def copy(self) -> Response:
        return Response(self.status, self.body, self.content_type, dict(self.headers))


@dataclass
class Context:
    state: SimState
    body: dict[str, Any]
    call: Call
    base_url: str

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"


def flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _absent(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a positive integer") from None
    if number < 1:
        raise ApiError(400, f"{name} must be a positive integer")
    return number


def _required_id(body: dict[str, Any], name: str) -> str:
    """A container number exactly as sent: no trimming, no case change."""
    value = body.get(name)
    if not isinstance(value, str) or value == "":
        raise ApiError(400, f"Missing required field: {name}")
    return value


def _not_found_seconds(state: SimState, container_id: str) -> float:
    """A search that finds nothing takes 2/3 to 4/3 of timeline_not_found (30-60 s)."""
    spread = data.stable_int(state.config.seed, "not-found", container_id) % 1000 / 1500
    return state.config.latency("timeline_not_found") * (2 / 3 + spread)


def _debug_bundle(ctx: Context, session: Session) -> str:
    """Build the screenshots zip of a debug call (costs debug_bundle) and return its URL."""
    state = ctx.state
    state.step("debug_bundle", session)
    state.count("debug_bundles")
    shot = data.png_bytes(32, 16, data.stable_int(ctx.call.id, session.session_id))
    content = data.zip_bytes({"screenshot_1.png": shot})
    name = state.store_file(
        lambda ts: f"{session.session_id}/debug_bundle_{ts}.zip", content, data.ZIP_CONTENT_TYPE
    )
    return ctx.file_url(name)


def _collided(ctx: Context, session: Session) -> Response:
    """The garbage a call gets when it drove a browser another call was already driving: the
    earlier call's answer when both are the same endpoint, else a stale-element failure."""
    earlier = ctx.call.collided_with
    assert earlier is not None
    if earlier.endpoint == ctx.call.endpoint:
        ctx.state.wait_for_call(earlier)
        if session.closed_reason is not None:
            raise closed_error(session.closed_reason)
        if isinstance(earlier.response, Response):
            ctx.call.forced_outcome = "collision"
            return earlier.response.copy()
    raise ApiError(500, STALE_ELEMENT_ERROR, outcome="collision")


def _with_session(
    ctx: Context,
    work: Callable[[Session], dict[str, Any] | Response],
    on_error: Callable[[Session, ApiError], None] | None = None,
) -> Response:
    """Run ``work`` on the session resolved from the request's session block.

    Afterwards: a call that collided with another on the same browser gets garbage
    (``_collided``); a debug call (``debug`` missing or true) pays for and links a debug
    bundle; a failure on a live browser names the session and goes to ``on_error``."""
    state, call = ctx.state, ctx.call
    session, is_new = state.acquire(ctx.body, call)
    try:
        try:
            if call.page_return:
                state.step("page_return", session)
            result: dict[str, Any] | Response | None = None
            try:
                result = work(session)
            except ApiError as exc:
                # A collided call's own failure is replaced by the collision's garbage.
                if call.collided_with is None or exc.outcome != "error":
                    raise
            if session.closed_reason is not None:
                raise closed_error(session.closed_reason)
            if call.collided_with is not None:
                result = _collided(ctx, session)
            assert result is not None
        except ApiError as exc:
            if exc.outcome in ("error", "collision") and session.closed_reason is None:
                exc.payload.setdefault("session_id", session.session_id)
                if on_error is not None:
                    on_error(session, exc)
                if call.debug:
                    exc.payload["debug_bundle_url"] = _debug_bundle(ctx, session)
            raise
        if isinstance(result, Response):
            if call.debug and call.forced_outcome is None:
                _debug_bundle(ctx, session)
            return result
        payload = {"success": True, "session_id": session.session_id, "is_new_session": is_new}
        payload.update(result)
        if call.debug:
            payload["debug_bundle_url"] = _debug_bundle(ctx, session)
        return Response.json(payload)
    finally:
        state.release(session, call)


# ------------------------------------------------------------------ sessions


def health(ctx: Context) -> Response:
    active = ctx.state.active_sessions()
    capacity = ctx.state.config.capacity
    return Response.json(
        {
            "status": "healthy",
            "service": SERVICE_NAME,
            "version": SERVICE_VERSION,
            "active_sessions": active,
            "max_sessions": capacity,
            "session_capacity": f"{active}/{capacity}",
            "persistent_sessions": 0,
            "timestamp": naive_local(time.time()),
        }
    )


def list_sessions(ctx: Context) -> Response:
    sessions = ctx.state.list_sessions()
    if any(s.dead for s in sessions):
        # Reading a dead browser's current URL raises: Flask answers its HTML error page.
        return Response.html(500)
    items = [s.public(ctx.state.current_url(s)) for s in sessions]
    return Response.json({"active_sessions": len(items), "sessions": items})


def delete_session(ctx: Context, session_id: str) -> Response:
    ctx.call.session_id = session_id
    if not ctx.state.delete_session(session_id):
        raise ApiError(404, "Session not found")
    return Response.json({"success": True, "message": f"Session {session_id} closed"})


def get_session(ctx: Context) -> Response:
    if any(
        not isinstance(ctx.body.get(name), str) or ctx.body[name] == ""
        for name in CREDENTIAL_FIELDS
    ):
        raise ApiError(400, f"Missing required fields: {', '.join(CREDENTIAL_FIELDS)}")
    username = ctx.body["username"]
    ctx.call.username = username
    session, is_new = ctx.state.get_session(
        username, ctx.body["password"], ctx.body["captcha_api_key"], ctx.call
    )
    ctx.call.session_id_out = session.session_id
    return Response.json(
        {
            "success": True,
            "session_id": session.session_id,
            "is_new": is_new,
            "username": session.username,
            "created_at": naive_local(session.created_at),
            "expires_at": None,
            "message": "Session created successfully" if is_new else "Using existing session",
        }
    )


def cleanup(ctx: Context) -> Response:
    closed = ctx.state.cleanup()
    return Response.json(
        {"success": True, "message": "Cleanup completed", "sessions_closed": closed}
    )


def emergency_recovery(ctx: Context) -> Response:
    closed = ctx.state.cleanup()
    return Response.json(
        {
            "success": True,
            "message": "Emergency recovery completed: all sessions closed",
            "sessions_closed": closed,
        }
    )


# ---------------------------------------------------------------- containers


def get_containers(ctx: Context) -> Response:
    infinite = flag(ctx.body, "infinite_scrolling", True)
    return_url = flag(ctx.body, "return_url", False)
    target_count = _positive_int(ctx.body, "target_count")
    target_id = ctx.body.get("target_container_id")
    target_id = target_id if isinstance(target_id, str) and target_id else None

    def work(session: Session) -> dict[str, Any] | Response:
        state = ctx.state
        step = "get_containers_full" if infinite else "get_containers_first_page"
        state.step(step, session, ctx.call.extra_delay)
        everything = state.containers(session.username)
        if not everything:
            raise ApiError(500, NO_CONTAINERS_ERROR)
        rows = everything if infinite else everything[: data.FIRST_PAGE_SIZE]
        if target_count is not None:
            rows = rows[:target_count]
        if target_id is not None:
            index = next((i for i, row in enumerate(rows) if row["Container #"] == target_id), None)
            if index is not None:
                rows = rows[: index + 1]
        if rows is everything:
            content = state.containers_xlsx(session.username)
        else:
            content = data.xlsx_bytes(data.COLUMNS, rows, "Containers")
        state.record_download(session, content)
        if not return_url:
            stamp = time.strftime("%Y%m%d_%H%M%S")
            return Response(
                200,
                content,
                data.XLSX_CONTENT_TYPE,
                {"Content-Disposition": f'attachment; filename="containers_scraped_{stamp}.xlsx"'},
            )
        name = state.store_file(
            lambda ts: f"{session.session_id}/containers_scraped_{ts}.xlsx",
            content,
            data.XLSX_CONTENT_TYPE,
        )
        return {
            "file_url": ctx.file_url(name),
            "file_name": name.rsplit("/", 1)[-1],
            "file_size": len(content),
            "total_containers": len(rows) if infinite else "first_page_only",
            "scroll_cycles": math.ceil(len(rows) / data.FIRST_PAGE_SIZE) if infinite else 0,
        }

    return _with_session(ctx, work)


def _search(
    ctx: Context, session: Session, sheet: data.Sheet, container_id: Any, error: str, **extra: Any
) -> dict[str, str]:
    """The page's case-sensitive search; a container it does not find takes the slow
    not-found search (30-60 s) and fails."""
    row = sheet.find(container_id) if isinstance(container_id, str) else None
    if row is None:
        ctx.state.sleep(_not_found_seconds(ctx.state, str(container_id)), session)
        raise ApiError(500, error, **extra)
    return row


def get_container_timeline(ctx: Context) -> Response:
    container_id = _required_id(ctx.body, "container_id")

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        sheet = state.sheet(session.username)
        row = _search(ctx, session, sheet, container_id, SEARCH_FAILED_ERROR)
        state.step("timeline", session, ctx.call.extra_delay)
        passed, timeline = data.timeline_for(sheet, row, state.config)
        if passed is None:
            raise ApiError(500, PREGATE_MISSING_ERROR)
        return {
            "container_id": container_id,
            "passed_pregate": passed,
            "timeline": timeline,
            "milestone_count": len(timeline),
            "detection_method": data.detection_method(container_id, state.config),
        }

    return _with_session(ctx, work)


def get_booking_number(ctx: Context) -> Response:
    container_id = _required_id(ctx.body, "container_id")

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        sheet = state.sheet(session.username)
        row = _search(ctx, session, sheet, container_id, SEARCH_FAILED_ERROR)
        state.step("booking_number", session, ctx.call.extra_delay)
        booking = data.booking_number_for(row, state.config)
        result: dict[str, Any] = {"container_id": container_id, "booking_number": booking}
        if booking is None:
            result["message"] = "Booking number not found"
        return result

    return _with_session(ctx, work)


def _id_list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"'{name}' must be a list")
    return list(value)


def get_info_bulk(ctx: Context) -> Response:
    imports = _id_list(ctx.body, "import_containers")
    exports = _id_list(ctx.body, "export_containers")
    if not imports and not exports:
        raise ApiError(400, BULK_EMPTY_ERROR)

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        sheet = state.sheet(session.username)
        extra = ctx.call.extra_delay

        def searched(container_id: Any) -> dict[str, str] | None:
            # One container at a time, as the real page does.
            nonlocal extra
            state.step("bulk_per_container", session, extra)
            extra = 0.0
            row = sheet.find(container_id) if isinstance(container_id, str) else None
            if row is None:
                state.sleep(_not_found_seconds(state, str(container_id)), session)
            return row

        import_results: list[dict[str, Any]] = []
        for container_id in imports:
            row = searched(container_id)
            failure = SEARCH_FAILED_ERROR if row is None else None
            if row is not None:
                passed, timeline = data.timeline_for(sheet, row, state.config)
                if passed is None:
                    failure = PREGATE_MISSING_ERROR
            if failure is not None:
                import_results.append(
                    {
                        "container_id": container_id,
                        "success": False,
                        "pregate_status": None,
                        "pregate_details": None,
                        "error": failure,
                    }
                )
                continue
            import_results.append(
                {
                    "container_id": container_id,
                    "success": True,
                    "pregate_status": passed,
                    "pregate_details": None,
                    "timeline": timeline,
                    "milestone_count": len(timeline),
                }
            )
        export_results: list[dict[str, Any]] = []
        for container_id in exports:
            row = searched(container_id)
            if row is None:
                export_results.append(
                    {
                        "container_id": container_id,
                        "success": False,
                        "booking_number": None,
                        "error": SEARCH_FAILED_ERROR,
                    }
                )
                continue
            export_results.append(
                {
                    "container_id": container_id,
                    "success": True,
                    "booking_number": data.booking_number_for(row, state.config),
                }
            )
        import_ok = sum(1 for r in import_results if r["success"])
        export_ok = sum(1 for r in export_results if r["success"])
        failed = len(imports) + len(exports) - import_ok - export_ok
        return {
            "message": f"Bulk processing completed: {import_ok + export_ok} successful, "
            f"{failed} failed",
            "results": {
                "import_results": import_results,
                "export_results": export_results,
                "summary": {
                    "total_import": len(imports),
                    "total_export": len(exports),
                    "import_success": import_ok,
                    "import_failed": len(imports) - import_ok,
                    "export_success": export_ok,
                    "export_failed": len(exports) - export_ok,
                },
            },
        }

    return _with_session(ctx, work)


# -------------------------------------------------------------- appointments


def check_appointments(ctx: Context) -> Response:
    state, body = ctx.state, ctx.body
    # Any check arriving closes the browsers of workflows that failed long enough ago.
    state.fire_poisons()
    container_type = body.get("container_type")
    if _absent(container_type):
        raise ApiError(400, "Missing required field: container_type", current_phase=1)
    if container_type not in ("import", "export"):
        raise ApiError(
            400,
            f"Invalid container_type: '{container_type}'. Must be 'import' or 'export'",
            current_phase=1,
        )
    is_import = container_type == "import"
    key = "container_id" if is_import else "booking_number"
    requested = body.get("appointment_session_id")
    held: dict[str, Any] = {}

    def work(session: Session) -> dict[str, Any]:
        config = state.config
        params = secret_free(body) or {}
        resumed = state.held_workflow(session, requested) if isinstance(requested, str) else None
        if resumed is not None:
            appointment_session_id = requested
            # The held workflow keeps what it was given; the resume adds or replaces fields.
            params = {**resumed, **{k: v for k, v in params.items() if not _absent(v)}}
        else:
            appointment_session_id = f"appt_{int(time.time())}_{new_token()}"
        held.update(id=appointment_session_id, params=params)

        total = config.latency(f"check_appointments_{container_type}") + ctx.call.extra_delay
        phase1 = total * PHASE1_SHARE[container_type]
        state.sleep(phase1, session)
        missing = [name for name in (*PHASE1_FIELDS, key) if _absent(params.get(name))]
        if missing:
            raise ApiError(
                400, f"Missing required fields for Phase 1: {', '.join(missing)}", current_phase=1
            )
        company, terminal, move_type = (params[name] for name in PHASE1_FIELDS)
        # The dropdowns are matched exactly (the real page falls back to a partial match).
        if company not in config.trucking_companies:
            raise ApiError(
                500,
                f"Phase 1 failed - Trucking company: '{company}' not found in dropdown",
                current_phase=1,
            )
        if terminal not in config.terminals:
            raise ApiError(
                500,
                f"Phase 1 failed - Terminal: '{terminal}' not found in dropdown",
                current_phase=1,
            )
        if move_type not in data.MOVE_TYPES:
            raise ApiError(
                500,
                f"Phase 1 failed - Move type: '{move_type}' not found in dropdown",
                current_phase=1,
            )
        identifier = params[key]
        hidden: data.Hidden | None = None
        if is_import:
            if terminal in data.NO_CONTAINER_FIELD_TERMINALS and (
                _absent(params.get("line")) or _absent(params.get("equip_size"))
            ):
                raise ApiError(400, CONTAINER_FIELD_ERROR, current_phase=1)
            sheet = state.sheet(session.username)
            row = _search(
                ctx, session, sheet, identifier, CHECK_SEARCH_FAILED_ERROR, current_phase=1
            )
            if row["Trade Type"] != "IMPORT":
                raise ApiError(500, CHECK_SEARCH_FAILED_ERROR, current_phase=1)
            hidden = sheet.hidden[row["Container #"]]
        elif not isinstance(identifier, str) or identifier.startswith(INVALID_BOOKING_PREFIX):
            raise ApiError(
                400,
                "Booking number validation failed",
                error_message=f"Booking number {identifier} not found",
                current_phase=1,
            )
        plate = params.get("truck_plate")
        if _absent(plate):
            raise ApiError(400, "Missing required field for Phase 2: truck_plate", current_phase=2)
        if not isinstance(plate, str) or not PLATE_RE.fullmatch(plate):
            raise ApiError(
                500, f"Phase 2 failed - Truck plate: '{plate}' rejected", current_phase=2
            )
        state.sleep(total - phase1, session)

        kind = "dropdown" if is_import else "calendar"
        png = data.png_bytes(96, 48, data.stable_int(config.seed, identifier))
        shot = state.store_file(
            lambda ts: f"{session.session_id}/{kind}_{ts}.png", png, data.PNG_CONTENT_TYPE
        )
        phase_data = {
            name: params[name]
            for name in (*PHASE1_FIELDS, key, "truck_plate", "line", "equip_size", "own_chassis")
            if name in params
        }
        result: dict[str, Any] = {
            "container_type": container_type,
            "appointment_session_id": appointment_session_id,
            "current_phase": 3,
            "phase_data": phase_data,
        }
        if hidden is not None:
            times = data.available_times(
                identifier,
                terminal,
                config,
                dt.datetime.now().astimezone(),
                has_slots=hidden.has_slots,
                version=hidden.slot_version,
            )
            result.update(
                {
                    "available_times": times,
                    "count": len(times),
                    "dropdown_screenshot_url": ctx.file_url(shot),
                }
            )
        else:
            generation = state.generation(session.username)
            result.update(
                {
                    "calendar_found": data.calendar_found(identifier, config, generation),
                    "calendar_screenshot_url": ctx.file_url(shot),
                }
            )
        if resumed is not None:
            state.release_workflow(appointment_session_id)
        return result

    def on_error(session: Session, exc: ApiError) -> None:
        # The failed workflow stays on the browser: resumable, and poison in poison_delay.
        if "id" not in held:
            held.update(id=f"appt_{int(time.time())}_{new_token()}", params=secret_free(body))
        exc.payload.setdefault("current_phase", 1)
        exc.payload["appointment_session_id"] = held["id"]
        state.hold_workflow(session, held["id"], held["params"] or {}, exc.payload["error"])

    return _with_session(ctx, work, on_error)


def get_appointments(ctx: Context) -> Response:
    target_count = _positive_int(ctx.body, "target_count")
    target_id = ctx.body.get("target_appointment_id")

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        state.step("get_appointments", session, ctx.call.extra_delay)
        rows = state.appointments(session.username)
        if target_count is not None:
            rows = rows[:target_count]
        if isinstance(target_id, str) and target_id:
            index = next((i for i, r in enumerate(rows) if r["Appointment #"] == target_id), None)
            if index is not None:
                rows = rows[: index + 1]
        if ctx.call.stale_sheet:
            # The export failed: the newest sheet the browser downloaded lately comes back.
            content = state.recent_download(session)
            if content is None:
                raise ApiError(500, EXCEL_FAILED_ERROR)
            state.count("stale_sheets")
        else:
            content = data.xlsx_bytes(data.APPOINTMENT_COLUMNS, rows, "Appointments")
            state.record_download(session, content)
        name = state.store_file(
            lambda ts: f"{session.session_id}_{ts}_appointments.xlsx",
            content,
            data.XLSX_CONTENT_TYPE,
        )
        return {"selected_count": len(rows), "file_url": ctx.file_url(name)}

    return _with_session(ctx, work)


def make_appointment(ctx: Context) -> Response:
    body = ctx.body
    identifier = body.get("container_id") or body.get("booking_number")
    if not isinstance(identifier, str) or not identifier:
        raise ApiError(400, "Missing required field: container_id", current_phase=1)

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        state.step("make_appointment", session, ctx.call.extra_delay)
        number = f"APT{data.stable_int(new_token()) % 10**8:08d}"
        slot = body.get("appointment_time") or body.get("time_slot") or ""
        state.book(
            session.username,
            {
                "Appointment #": number,
                "Container #": identifier,
                "Trade Type": str(body.get("container_type", "")).upper(),
                "Terminal": str(body.get("terminal", "")),
                "Move Type": str(body.get("move_type", "")),
                "Appointment Date": "",
                "Time Slot": str(slot),
                "Status": "SCHEDULED",
                "Truck Plate": str(body.get("truck_plate", "")),
                "Trucking Company": str(body.get("trucking_company", "")),
            },
        )
        return {
            "appointment_number": number,
            "container_id": identifier,
            "message": "Appointment booked",
        }

    return _with_session(ctx, work)


def get_file(ctx: Context, name: str) -> Response:
    stored = ctx.state.get_file(name)
    if stored is None:
        raise ApiError(404, "File not found")
    return Response(200, stored.content, stored.content_type)


# Endpoints that drive a browser: JSON bodies required (400 otherwise), debug bundles.
OPERATION_ENDPOINTS: dict[str, Callable[[Context], Response]] = {
    "/get_containers": get_containers,
    "/get_container_timeline": get_container_timeline,
    "/get_booking_number": get_booking_number,
    "/get_info_bulk": get_info_bulk,
    "/check_appointments": check_appointments,
    "/get_appointments": get_appointments,
    "/make_appointment": make_appointment,
}
POST_ENDPOINTS: dict[str, Callable[[Context], Response]] = {
    "/get_session": get_session,
    **OPERATION_ENDPOINTS,
    "/cleanup": cleanup,
    "/emergency_recovery": emergency_recovery,
}
