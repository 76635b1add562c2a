"""The public E-Modal automation API endpoints, independent of the HTTP plumbing."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import data
from .config import INVALID_BOOKING_PREFIX
from .state import CREDENTIAL_FIELDS, ApiError, Call, Session, SimState, closed_error, iso

SERVICE_NAME = "E-Modal Business API"
SERVICE_VERSION = "1.0.0"
PHASE2_FIELDS = ("trucking_company", "terminal", "move_type", "truck_plate")
OPTIONAL_APPOINTMENT_FIELDS = (
    "line",
    "equip_size",
    "own_chassis",
    "pin_code",
    "unit_number",
    "seal_value",
)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: dict[str, Any], status: int = 200) -> Response:
        return cls(status, json.dumps(payload).encode())


@dataclass
class Context:
    state: SimState
    body: dict[str, Any]
    call: Call
    base_url: str

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:40] or "user"


def _file_name(prefix: str, username: str, ext: str) -> str:
    return f"{prefix}_{_safe(username)}_{int(time.time())}_{secrets.token_hex(4)}.{ext}"


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


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


def _required_str(body: dict[str, Any], name: str, **extra: Any) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"Missing required field: {name}", **extra)
    return value.strip()


def _with_session(ctx: Context, work: Callable[[Session], dict[str, Any] | Response]) -> Response:
    """Run ``work`` on the session resolved from the request's session block."""
    session, is_new = ctx.state.acquire(ctx.body, ctx.call)
    try:
        try:
            result = work(session)
        except ApiError as exc:
            # Failures on a live browser name it, so a silently re-logged client can keep it.
            if exc.outcome == "error" and session.closed_reason is None:
                exc.payload.setdefault("session_id", session.session_id)
            raise
        # The browser may have been closed after the last simulated step finished.
        if session.closed_reason is not None:
            raise closed_error(session.closed_reason)
    finally:
        ctx.state.release(session)
    if isinstance(result, Response):
        return result
    return Response.json(
        {"success": True, "session_id": session.session_id, "is_new_session": is_new, **result}
    )


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
            "timestamp": iso(time.time()),
        }
    )


def list_sessions(ctx: Context) -> Response:
    sessions = [s.public() for s in ctx.state.list_sessions()]
    return Response.json({"success": True, "active_sessions": len(sessions), "sessions": sessions})


def delete_session(ctx: Context, session_id: str) -> Response:
    ctx.call.session_id = session_id
    if not ctx.state.delete_session(session_id):
        raise ApiError(404, "Session not found")
    return Response.json({"success": True, "message": f"Session {session_id} closed"})


def get_session(ctx: Context) -> Response:
    missing = [
        name
        for name in CREDENTIAL_FIELDS
        if not isinstance(ctx.body.get(name), str) or not ctx.body[name].strip()
    ]
    if missing:
        raise ApiError(400, f"Missing required fields: {', '.join(missing)}")
    username = ctx.body["username"].strip()
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
            "created_at": iso(session.created_at),
            "expires_at": None,
            "message": "Session created" if is_new else "Using existing session",
        }
    )


# ---------------------------------------------------------------- containers


def get_containers(ctx: Context) -> Response:
    infinite = _flag(ctx.body, "infinite_scrolling", True)
    return_url = _flag(ctx.body, "return_url", False)
    target_count = _positive_int(ctx.body, "target_count")
    target_id = ctx.body.get("target_container_id")
    target_id = target_id.strip().upper() if isinstance(target_id, str) and target_id else None

    def work(session: Session) -> dict[str, Any] | Response:
        state = ctx.state
        step = "get_containers_full" if infinite else "get_containers_first_page"
        state.step(step, session, ctx.call.extra_delay)
        everything = state.containers(session.username)
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
        name = _file_name("containers", session.username, "xlsx")
        if not return_url:
            return Response(
                200,
                content,
                data.XLSX_CONTENT_TYPE,
                {"Content-Disposition": f'attachment; filename="{name}"'},
            )
        state.put_file(name, content, data.XLSX_CONTENT_TYPE)
        return {
            "file_url": ctx.file_url(name),
            "file_name": name,
            "file_size": len(content),
            "total_containers": len(rows) if infinite else "first_page_only",
            "scroll_cycles": math.ceil(len(rows) / data.FIRST_PAGE_SIZE) if infinite else 0,
        }

    return _with_session(ctx, work)


def _lookup(state: SimState, session: Session, container_id: str) -> dict[str, str] | None:
    return data.find_container(state.containers(session.username), container_id)


def _searched(ctx: Context, session: Session, container_id: str) -> dict[str, str]:
    """The account's container, after the browser searched for it; a missing one takes the
    slow not-found search and fails as the real automation does."""
    container = _lookup(ctx.state, session, container_id)
    if container is None:
        ctx.state.step("timeline_not_found", session, ctx.call.extra_delay)
        raise ApiError(500, "Search failed: container not found")
    return container


def get_container_timeline(ctx: Context) -> Response:
    container_id = _required_str(ctx.body, "container_id").upper()

    def work(session: Session) -> dict[str, Any]:
        container = _searched(ctx, session, container_id)
        ctx.state.step("timeline", session, ctx.call.extra_delay)
        passed, timeline = data.timeline_for(container, session.username, ctx.state.config)
        return {
            "container_id": container_id,
            "passed_pregate": passed,
            "timeline": timeline,
            "milestone_count": len(timeline),
            "detection_method": "timeline_table",
        }

    return _with_session(ctx, work)


def get_booking_number(ctx: Context) -> Response:
    container_id = _required_str(ctx.body, "container_id").upper()

    def work(session: Session) -> dict[str, Any]:
        container = _searched(ctx, session, container_id)
        ctx.state.step("booking_number", session, ctx.call.extra_delay)
        booking = data.booking_number_for(container, ctx.state.config)
        result: dict[str, Any] = {"container_id": container_id, "booking_number": booking}
        if booking is None:
            result["message"] = "No booking number found (import container)"
        return result

    return _with_session(ctx, work)


def _id_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{name} must be a list of container numbers")
    return [v.strip().upper() for v in value if v.strip()]


def get_info_bulk(ctx: Context) -> Response:
    imports = _id_list(ctx.body, "import_containers")
    exports = _id_list(ctx.body, "export_containers")
    if not imports and not exports:
        raise ApiError(
            400, "At least one of import_containers or export_containers must be non-empty"
        )

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        per = state.config.latency("bulk_per_container")
        state.sleep(per * (len(imports) + len(exports)) + ctx.call.extra_delay, session)
        import_results: list[dict[str, Any]] = []
        for container_id in imports:
            container = _lookup(state, session, container_id)
            if container is None:
                import_results.append(
                    {
                        "container_id": container_id,
                        "success": False,
                        "pregate_status": False,
                        "pregate_details": "",
                        "timeline": [],
                        "milestone_count": 0,
                        "error": "Container not found",
                    }
                )
                continue
            passed, timeline = data.timeline_for(container, session.username, state.config)
            import_results.append(
                {
                    "container_id": container_id,
                    "success": True,
                    "pregate_status": passed,
                    "pregate_details": data.pregate_details(passed, timeline),
                    "timeline": timeline,
                    "milestone_count": len(timeline),
                }
            )
        export_results: list[dict[str, Any]] = []
        for container_id in exports:
            container = _lookup(state, session, container_id)
            if container is None:
                export_results.append(
                    {
                        "container_id": container_id,
                        "success": False,
                        "booking_number": None,
                        "error": "Container not found",
                    }
                )
                continue
            export_results.append(
                {
                    "container_id": container_id,
                    "success": True,
                    "booking_number": data.booking_number_for(container, state.config),
                }
            )
        import_ok = sum(1 for r in import_results if r["success"])
        export_ok = sum(1 for r in export_results if r["success"])
        return {
            "message": f"Processed {len(imports)} import and {len(exports)} export containers",
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
    body = ctx.body
    container_type = body.get("container_type")
    if not isinstance(container_type, str) or not container_type.strip():
        raise ApiError(400, "Missing required field: container_type", current_phase=1)
    container_type = container_type.strip().lower()
    if container_type not in ("import", "export"):
        raise ApiError(400, "Invalid container_type: must be 'import' or 'export'", current_phase=1)
    key = "container_id" if container_type == "import" else "booking_number"
    identifier = _required_str(body, key, current_phase=1).upper()
    for name in PHASE2_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ApiError(400, f"Missing required field for Phase 2: {name}", current_phase=2)
    appointment_session_id = body.get("appointment_session_id")
    if not isinstance(appointment_session_id, str) or not appointment_session_id:
        appointment_session_id = f"appt_{int(time.time())}_{secrets.token_hex(6)}"

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        total = state.config.latency("check_appointments") + ctx.call.extra_delay
        # Phase 1 (container / booking lookup) is about a third of the whole flow.
        state.sleep(total / 3, session)
        if container_type == "import":
            if _lookup(state, session, identifier) is None:
                raise ApiError(500, "Phase 1 failed - container not found", current_phase=1)
        elif identifier.startswith(INVALID_BOOKING_PREFIX):
            raise ApiError(
                400,
                "Booking number validation failed",
                error_message=f"Booking number {identifier} not found",
                current_phase=1,
            )
        state.sleep(total - total / 3, session)
        phase_data: dict[str, Any] = {key: identifier}
        for name in PHASE2_FIELDS + OPTIONAL_APPOINTMENT_FIELDS:
            if name in body:
                phase_data[name] = body[name]
        png = data.png_bytes(96, 48, data.stable_int(state.config.seed, identifier))
        shot = _file_name(
            "dropdown" if container_type == "import" else "calendar", identifier, "png"
        )
        state.put_file(shot, png, data.PNG_CONTENT_TYPE)
        result: dict[str, Any] = {
            "container_type": container_type,
            "appointment_session_id": appointment_session_id,
            "current_phase": 3,
            "phase_data": phase_data,
        }
        if container_type == "import":
            now = dt.datetime.now().astimezone()
            times = data.available_times(identifier, state.config, now)
            result.update(
                {
                    "available_times": times,
                    "count": len(times),
                    "dropdown_screenshot_url": ctx.file_url(shot),
                }
            )
        else:
            result.update(
                {
                    "calendar_found": data.calendar_found(identifier, state.config),
                    "calendar_screenshot_url": ctx.file_url(shot),
                }
            )
        return result

    return _with_session(ctx, work)


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
        content = data.xlsx_bytes(data.APPOINTMENT_COLUMNS, rows, "Appointments")
        name = _file_name("appointments", session.username, "xlsx")
        state.put_file(name, content, data.XLSX_CONTENT_TYPE)
        return {
            "selected_count": len(rows),
            "file_url": ctx.file_url(name),
            "file_name": name,
            "file_size": len(content),
        }

    return _with_session(ctx, work)


def make_appointment(ctx: Context) -> Response:
    body = ctx.body
    identifier = body.get("container_id") or body.get("booking_number")
    if not isinstance(identifier, str) or not identifier.strip():
        raise ApiError(400, "Missing required field: container_id", current_phase=1)
    identifier = identifier.strip().upper()

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        state.step("make_appointment", session, ctx.call.extra_delay)
        number = f"APT{secrets.randbelow(10**8):08d}"
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
                "Status": "Scheduled",
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


POST_ENDPOINTS: dict[str, Callable[[Context], Response]] = {
    "/get_session": get_session,
    "/get_containers": get_containers,
    "/get_container_timeline": get_container_timeline,
    "/get_booking_number": get_booking_number,
    "/get_info_bulk": get_info_bulk,
    "/check_appointments": check_appointments,
    "/get_appointments": get_appointments,
    "/make_appointment": make_appointment,
}
