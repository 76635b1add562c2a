"""The public E-Modal automation API endpoints, independent of the HTTP plumbing. The
appointment page (check_appointments, make_appointment) lives in ``appointments.py``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from . import appointments, data, texts
from .core import (
    ApiError,
    Context,
    Response,
    debug_bundle,
    failure_bundle,
    flag,
    run_operation,
)
from .state import CREDENTIAL_FIELDS, BrowserGone, Session, naive_local

SERVICE_NAME = "E-Modal Business Operations API"
SERVICE_VERSION = "1.0.0"

NO_CONTAINERS_ERROR = texts.NO_CONTAINERS
PREGATE_MISSING_ERROR = f"Pregate status check failed: {texts.PREGATE_MISSING}"
BULK_EMPTY_ERROR = texts.BULK_EMPTY
EXCEL_FAILED_ERROR = texts.EXCEL_MISSING
CONTAINER_FIELD_ERROR = texts.CONTAINER_FIELD
# Share of a containers-page call spent getting to the page (its navigation step).
NAVIGATION_SHARE = 1 / 3


def search_failed_error(container_id: object) -> str:
    """timeline / booking number: the search's final "not there" text (L4830)."""
    return f"Search failed: {texts.not_found_after_scrolling(container_id)}"


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
            "persistent_sessions": ctx.state.persistent_sessions(),
            "timestamp": naive_local(time.time()),
        }
    )


def list_sessions(ctx: Context) -> Response:
    sessions = ctx.state.list_sessions()
    if any(s.gone for s in sessions):
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
    if not all(ctx.body.get(name) for name in CREDENTIAL_FIELDS):
        raise ApiError(400, f"Missing required fields: {', '.join(CREDENTIAL_FIELDS)}")
    username, password, key = (str(ctx.body[name]) for name in CREDENTIAL_FIELDS)
    ctx.call.username = username
    session, is_new = ctx.state.get_session(username, password, key, ctx.call)
    ctx.call.session_id_out = session.session_id
    return Response.json(
        {
            "success": True,
            "session_id": session.session_id,
            "is_new": is_new,
            "username": session.username,
            "created_at": naive_local(session.created_at),
            "expires_at": None,
            "message": "New persistent session created"
            if is_new
            else "Using existing persistent session",
        }
    )


def cleanup(ctx: Context) -> Response:
    sizes = ctx.state.cleanup_files()
    return Response.json({"success": True, "message": "Cleanup completed", **sizes})


def cleanup_orphaned_processes(ctx: Context) -> Response:
    killed = ctx.state.cleanup_orphans()
    return Response.json(
        {
            "success": True,
            "message": f"Cleaned up {killed} orphaned processes",
            "killed_count": killed,
            "active_sessions": ctx.state.active_sessions(),
        }
    )


def emergency_recovery(ctx: Context) -> Response:
    killed = ctx.state.emergency_recovery()
    return Response.json(
        {
            "success": True,
            "message": f"Emergency recovery completed - killed {killed} processes and cleared "
            "all sessions",
            "killed_count": killed,
            "warning": "All Chrome browsers have been closed",
            "active_sessions": 0,
        }
    )


# ---------------------------------------------------------------- containers


def _navigate(ctx: Context, seconds: float, error: Callable[[str], ApiError]) -> None:
    """Get to the containers page (the first share of the call's time)."""
    ctx.stage = "navigation"
    ctx.sleep(seconds)
    glitch = ctx.glitch("navigation")
    if glitch is not None:
        raise error(texts.navigation_error(glitch.exception))
    assert ctx.session is not None
    ctx.session.page = "containers"
    ctx.stage = "work"


def _operation_glitches(ctx: Context, with_bundle: bool = False) -> None:
    """The exceptions an endpoint's outer handlers turn into ``Operation failed`` and
    ``Unexpected error``."""
    glitch = ctx.glitch("operation")
    if glitch is not None:
        extra = {"debug_bundle_url": failure_bundle(ctx)} if with_bundle else {}
        raise ApiError(500, f"Operation failed: {glitch.exception}", **extra)
    glitch = ctx.glitch("unexpected")
    if glitch is not None:
        raise ApiError(500, f"Unexpected error: {glitch.exception}")


def _positive_int(value: Any) -> int | None:
    """``target_count`` as the scroll loop uses it: a count, or nothing to stop at."""
    if isinstance(value, bool) or not value:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def get_containers(ctx: Context) -> Response:
    body = ctx.body
    target_id = body.get("target_container_id") or None
    target_count = _positive_int(body.get("target_count"))
    infinite = flag(body, "infinite_scrolling", True) and not target_id and not target_count
    return_url = flag(body, "return_url", False)

    def failure(ctx: Context, exc: str) -> ApiError:
        if ctx.stage == "navigation":
            return ApiError(500, f"Navigation failed: {texts.navigation_error(exc)}")
        return ApiError(500, f"Operation failed: {exc}", debug_bundle_url=failure_bundle(ctx))

    def work(session: Session) -> dict[str, Any] | Response:
        state = ctx.state
        total = state.config.latency(
            "get_containers_full" if infinite or target_id else "get_containers_first_page"
        )
        total += ctx.call.extra_delay
        _navigate(
            ctx, total * NAVIGATION_SHARE, lambda text: ApiError(500, f"Navigation failed: {text}")
        )
        ctx.sleep(total * (1 - NAVIGATION_SHARE))
        _operation_glitches(ctx, with_bundle=True)
        glitch = ctx.glitch("download")
        if glitch is not None:
            raise ApiError(
                500,
                f"Download failed: Scraping failed: {glitch.exception}",
                debug_bundle_url=failure_bundle(ctx),
            )
        everything = state.containers(session.username)
        if not everything:
            raise ApiError(500, NO_CONTAINERS_ERROR, debug_bundle_url=failure_bundle(ctx))
        scroll: dict[str, Any] = {}
        rows = everything
        if target_id:
            index = next((i for i, row in enumerate(rows) if row["Container #"] == target_id), None)
            if index is not None:
                rows = rows[: index + 1]
                scroll = {
                    "found_target_container": target_id,
                    "stopped_reason": f"Container {target_id} found (during scroll)",
                }
            scroll |= {"total_containers": len(rows)}
        elif target_count:
            rows = rows[:target_count]
            scroll = {"total_containers": len(rows)}
            if len(rows) >= target_count:
                scroll["stopped_reason"] = f"Target count {target_count} reached"
        elif infinite:
            scroll = {"total_containers": len(rows)}
        else:
            rows = rows[: data.FIRST_PAGE_SIZE]
            scroll = {"total_containers": "first_page_only", "scroll_cycles": 0}
        scroll.setdefault("scroll_cycles", math.ceil(len(rows) / data.FIRST_PAGE_SIZE))
        if rows is everything:
            content = state.containers_xlsx(session.username)
        else:
            content = data.xlsx_bytes(data.COLUMNS, rows, "Containers")
        # The scraped sheet lands in the session's download folder, whatever is answered.
        name = state.store_file(
            lambda ts: f"{session.session_id}/containers_scraped_{ts}.xlsx",
            content,
            data.XLSX_CONTENT_TYPE,
        )
        file_name = name.rsplit("/", 1)[-1]
        result: dict[str, Any] = {
            "file_url": ctx.file_url(name),
            "file_name": file_name,
            "file_size": len(content),
            **scroll,
        }
        if ctx.call.debug:
            sid = session.session_id
            result["debug_bundle_url"] = debug_bundle(
                ctx, lambda ts: f"{sid}_{ts}_DEBUG.zip", absolute=False
            )
        if not return_url:
            return Response(
                200,
                content,
                data.XLSX_CONTENT_TYPE,
                {"Content-Disposition": f'attachment; filename="{file_name}"'},
            )
        return result

    return run_operation(ctx, work, failure)


def _not_found_seconds(ctx: Context, container_id: object) -> float:
    """A search that finds nothing scrolls for 2/3 to 4/3 of timeline_not_found (30-60 s)."""
    config = ctx.state.config
    spread = data.stable_int(config.seed, "not-found", str(container_id)) % 1000 / 1500
    return config.latency("timeline_not_found") * (2 / 3 + spread)


def _find(ctx: Context, sheet: data.Sheet, container_id: object) -> dict[str, str] | None:
    """The page's progressive search: exact, case-sensitive; nothing found after 30-60 s."""
    row = sheet.find(container_id) if isinstance(container_id, str) else None
    if row is None:
        ctx.sleep(_not_found_seconds(ctx, container_id))
    return row


def _container_page(
    ctx: Context, container_id: object, latency: str
) -> tuple[data.Sheet, dict[str, str]]:
    """Navigate, search, expand: what timeline and booking number share (L8600-8625)."""
    state = ctx.state
    assert ctx.session is not None
    seconds = state.config.latency(latency) + ctx.call.extra_delay
    _navigate(
        ctx, seconds * NAVIGATION_SHARE, lambda text: ApiError(500, f"Navigation failed: {text}")
    )
    sheet = state.sheet(ctx.session.username)
    glitch = ctx.glitch("search")
    if glitch is not None:
        raise ApiError(500, f"Search failed: Progressive search failed: {glitch.exception}")
    row = _find(ctx, sheet, container_id)
    if row is None:
        raise ApiError(500, search_failed_error(container_id))
    ctx.sleep(seconds * (1 - NAVIGATION_SHARE))
    if ctx.glitch("expand") is not None:
        raise ApiError(500, f"Expand failed: {texts.expand_row_missing(container_id)}")
    _operation_glitches(ctx)
    return sheet, row


def _page_failure(ctx: Context, exc: str) -> ApiError:
    """timeline / booking number: a browser lost or disturbed at this step."""
    if ctx.stage == "navigation":
        return ApiError(500, f"Navigation failed: {texts.navigation_error(exc)}")
    return ApiError(500, f"Search failed: Progressive search failed: {exc}")


def _required_id(body: dict[str, Any]) -> Any:
    container_id = body.get("container_id") or body.get("container")
    if not container_id:
        raise ApiError(400, "Missing required field: container_id")
    return container_id


def get_container_timeline(ctx: Context) -> Response:
    container_id = _required_id(ctx.body)

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        sheet, row = _container_page(ctx, container_id, "timeline")
        if ctx.glitch("timeline") is not None:
            raise ApiError(500, f"Timeline extraction failed: {texts.TIMELINE_CONTAINER_MISSING}")
        passed, timeline = data.timeline_for(sheet, row, state.config)
        glitch = ctx.glitch("pregate")
        if glitch is not None:
            raise ApiError(500, f"Pregate status check failed: {glitch.exception}")
        if passed is None:
            raise ApiError(500, PREGATE_MISSING_ERROR)
        result: dict[str, Any] = {
            "container_id": container_id,
            "passed_pregate": passed,
            "timeline": timeline,
            "milestone_count": len(timeline),
            "detection_method": data.detection_method(row["Container #"], state.config),
        }
        if ctx.call.debug:
            sid = session.session_id
            result["debug_bundle_url"] = debug_bundle(
                ctx, lambda ts: f"{sid}_{ts}_PREGATE.zip", absolute=True
            )
        return result

    return run_operation(ctx, work, _page_failure)


def get_booking_number(ctx: Context) -> Response:
    container_id = _required_id(ctx.body)

    def work(session: Session) -> dict[str, Any]:
        sheet, row = _container_page(ctx, container_id, "booking_number")
        glitch = ctx.glitch("booking")
        if glitch is not None:
            raise ApiError(500, f"Booking number extraction failed: {glitch.exception}")
        booking = data.booking_number_for(row, ctx.state.config)
        result: dict[str, Any] = {"container_id": container_id, "booking_number": booking}
        if ctx.call.debug:
            sid = session.session_id
            result["debug_bundle_url"] = debug_bundle(
                ctx, lambda ts: f"{sid}_{ts}_BOOKING.zip", absolute=False
            )
        if booking is None:
            exporting = row["Trade Type"] == "EXPORT"
            result["message"] = (
                "Booking number not available" if exporting else "Booking number field not found"
            )
        return result

    return run_operation(ctx, work, _page_failure)


def _listed(value: Any) -> list[Any]:
    """How the bulk loop walks what it was given: a list as is, a string letter by letter,
    an object by its keys (unchecked, as the real server does)."""
    if isinstance(value, list | str | dict):
        return list(value)
    raise TypeError(f"object of type '{type(value).__name__}' has no len()")


def get_info_bulk(ctx: Context) -> Response:
    given_imports = ctx.body.get("import_containers", [])
    given_exports = ctx.body.get("export_containers", [])
    if not given_imports and not given_exports:
        raise ApiError(400, BULK_EMPTY_ERROR)

    def failure(ctx: Context, exc: str) -> ApiError:
        if ctx.stage == "navigation":
            return _bulk_navigation_error(ctx, texts.navigation_error(exc))
        return ApiError(500, exc)

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        _navigate(
            ctx,
            state.config.latency("bulk_per_container"),
            lambda text: _bulk_navigation_error(ctx, text),
        )
        try:
            imports, exports = _listed(given_imports), _listed(given_exports)
        except TypeError as exc:
            raise ApiError(500, str(exc)) from None
        glitch = ctx.glitch("exception")
        if glitch is not None:
            raise ApiError(500, glitch.exception)
        sheet = state.sheet(session.username)
        extra = ctx.call.extra_delay
        gone: str | None = None

        def entry(trade: str, container_id: Any) -> dict[str, Any]:
            """One container, one at a time; a failure stays in its entry."""
            nonlocal extra, gone
            glitch = _entry_glitch(ctx, trade, container_id)
            try:
                if gone is None:
                    ctx.sleep(state.config.latency("bulk_per_container") + extra)
                    extra = 0.0
            except BrowserGone as exc:  # the browser went away mid-bulk
                gone = exc.text
            if gone is not None:
                # Every later search fails at once on the dead driver (L4833).
                return _bulk_failure(
                    trade, container_id, f"Container not found: Progressive search failed: {gone}"
                )
            if glitch is not None and glitch.kind == "entry_search":
                return _bulk_failure(
                    trade,
                    container_id,
                    f"Container not found: Progressive search failed: {glitch.exception}",
                )
            row = _find(ctx, sheet, container_id)
            if row is None:
                return _bulk_failure(
                    trade,
                    container_id,
                    f"Container not found: {texts.not_found_after_scrolling(container_id)}",
                )
            if glitch is not None and glitch.kind == "entry_expand":
                return _bulk_failure(
                    trade,
                    container_id,
                    f"Failed to expand: {texts.expand_row_missing(container_id)}",
                    expanded=True,
                )
            if glitch is not None and glitch.kind == "entry_exception":
                return _bulk_failure(trade, container_id, glitch.exception, expanded=True)
            if trade == "export":
                if glitch is not None and glitch.kind == "entry_booking":
                    return _bulk_failure(trade, container_id, glitch.exception)
                booking = data.booking_number_for(row, state.config)
                return {"container_id": container_id, "success": True, "booking_number": booking}
            passed, timeline = data.timeline_for(sheet, row, state.config)
            if glitch is not None and glitch.kind == "entry_timeline":
                timeline = []  # extraction failed: the entry goes on without it (L9418)
            if glitch is not None and glitch.kind == "entry_pregate":
                passed, error = None, texts.TIMELINE_CONTAINER_MISSING
            else:
                error = texts.PREGATE_MISSING
            if passed is None:
                return {
                    "container_id": container_id,
                    "success": False,
                    "error": error,
                    "pregate_status": None,
                    "timeline": timeline,
                    "milestone_count": len(timeline),
                }
            return {
                "container_id": container_id,
                "success": True,
                "pregate_status": passed,
                "pregate_details": None,
                "timeline": timeline,
                "milestone_count": len(timeline),
            }

        import_results = [entry("import", c) for c in imports]
        export_results = [entry("export", c) for c in exports]
        import_ok = sum(1 for r in import_results if r["success"])
        export_ok = sum(1 for r in export_results if r["success"])
        failed = len(imports) + len(exports) - import_ok - export_ok
        result: dict[str, Any] = {
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
            "message": f"Bulk processing completed: {import_ok + export_ok} successful, "
            f"{failed} failed",
        }
        if ctx.call.debug:
            # L9574-9577: a link to a route the server does not have.
            name = f"debug_bundle_{session.session_id}_{time.strftime('%Y%m%d_%H%M%S')}.zip"
            state.count("debug_bundles")
            result["debug_bundle_url"] = f"{ctx.base_url}/debug_bundles/{name}"
        # Only get_info_bulk lets the refresh thread have the browser again (L9583).
        state.not_in_use(session)
        return result

    return run_operation(ctx, work, failure)


def _bulk_navigation_error(ctx: Context, text: str) -> ApiError:
    assert ctx.session is not None
    return ApiError(
        500,
        f"Failed to navigate to containers page: {text}",
        session_id=ctx.session.session_id,
        is_new_session=ctx.is_new,
    )


def _entry_glitch(ctx: Context, trade: str, container_id: Any) -> Any:
    """A counted glitch fault aimed at this entry (or the first entry it fits), else the
    glitch rate's roll for this entry."""
    glitch = ctx.call.glitch
    if (
        glitch is not None
        and not glitch.fired
        and glitch.kind.startswith("entry_")
        and (not glitch.container_id or glitch.container_id == container_id)
        and not (glitch.kind == "entry_pregate" and trade != "import")
        and not (glitch.kind in ("entry_timeline",) and trade != "import")
        and not (glitch.kind == "entry_booking" and trade != "export")
    ):
        glitch.fired = True
        glitch.exception = glitch.exception or texts.PAGE_EXCEPTIONS[0]
        ctx.state.count_glitch(ctx.call.endpoint, glitch.kind)
        return glitch
    rolled = ctx.state.glitch_entry(trade)
    if rolled is not None:
        ctx.state.count_glitch(ctx.call.endpoint, rolled.kind)
    return rolled


def _bulk_failure(
    trade: str, container_id: Any, error: str, expanded: bool = False
) -> dict[str, Any]:
    """A failed entry, shaped as the real loop writes it (L9391-9523)."""
    if trade == "export":
        return {
            "container_id": container_id,
            "success": False,
            "error": error,
            "booking_number": None,
        }
    entry: dict[str, Any] = {
        "container_id": container_id,
        "success": False,
        "error": error,
        "pregate_status": None,
    }
    if expanded:
        entry |= {"timeline": [], "milestone_count": 0}
    return entry


# -------------------------------------------------------------- appointments


def get_appointments(ctx: Context) -> Response:
    target_count = _positive_int(ctx.body.get("target_count"))
    target_id = ctx.body.get("target_appointment_id")

    def failure(ctx: Context, exc: str) -> ApiError:
        if ctx.stage == "navigation":
            return ApiError(500, f"Navigation failed: {exc}")
        return ApiError(500, f"{texts.CHECKBOX_SELECTION}: {exc}")

    def work(session: Session) -> dict[str, Any]:
        state = ctx.state
        sid = session.session_id
        seconds = state.config.latency("get_appointments") + ctx.call.extra_delay
        ctx.stage = "navigation"
        ctx.sleep(seconds / 2)
        glitch = ctx.glitch("navigation")
        if glitch is not None:
            raise ApiError(500, f"Navigation failed: {glitch.exception}")
        session.page = "myappointments"
        ctx.stage = "work"
        glitch = ctx.glitch("checkbox")
        if glitch is not None:
            raise ApiError(500, f"{texts.CHECKBOX_SELECTION}: {glitch.exception}")
        rows = state.appointments(session.username)
        if target_count is not None:
            rows = rows[:target_count]
        elif isinstance(target_id, str) and target_id:
            index = next((i for i, r in enumerate(rows) if r["Appointment #"] == target_id), None)
            if index is not None:
                rows = rows[: index + 1]
        if ctx.glitch("excel_button") is not None:
            raise ApiError(500, texts.EXCEL_BUTTON)
        _operation_glitches(ctx)
        # The export downloads into the session's folder, unless the click did nothing.
        lost = ctx.call.stale_sheet or ctx.glitch("excel_missing") is not None
        own = None
        if not lost:
            own = state.store_file(
                lambda ts: f"{sid}/export_{ts}.xlsx",
                data.xlsx_bytes(data.APPOINTMENT_COLUMNS, rows, "Appointments"),
                data.XLSX_CONTENT_TYPE,
            )
        ctx.sleep(seconds / 2)  # 5 s after the click, then the folder is read
        newest = state.newest_download(sid, own)
        if newest is None:
            extra: dict[str, Any] = {"session_id": sid, "is_new_session": ctx.is_new}
            if ctx.call.debug:
                extra["debug_bundle_url"] = debug_bundle(
                    ctx, lambda ts: f"{sid}_{ts}_get_appointments_debug.zip", absolute=True
                )
            raise ApiError(500, texts.EXCEL_MISSING, **extra)
        if newest != own:
            state.count("stale_sheets")
        # Moved and renamed (L9040-9046): whatever sheet it was, its old URL is gone.
        name = state.store_file(
            lambda ts: f"{sid}/{sid}_{ts}_appointments.xlsx", b"", data.XLSX_CONTENT_TYPE
        )
        state.move_file(newest, name)
        result: dict[str, Any] = {
            "selected_count": len(rows),
            "file_url": ctx.file_url(name.rsplit("/", 1)[-1]),
        }
        if ctx.call.debug:
            result["debug_bundle_url"] = debug_bundle(
                ctx, lambda ts: f"{sid}_{ts}_APPOINTMENTS.zip", absolute=True
            )
        return result

    return run_operation(ctx, work, failure)


def get_file(ctx: Context, name: str) -> Response:
    if not ctx.state.inside_downloads(name):
        raise ApiError(400, "Invalid path")
    stored = ctx.state.get_file(name)
    if stored is None:
        raise ApiError(404, "File not found")
    return Response(200, stored.content, stored.content_type)


# Endpoints that drive a browser: JSON bodies required (400 otherwise).
OPERATION_ENDPOINTS: dict[str, Callable[[Context], Response]] = {
    "/get_containers": get_containers,
    "/get_container_timeline": get_container_timeline,
    "/get_booking_number": get_booking_number,
    "/get_info_bulk": get_info_bulk,
    "/check_appointments": appointments.check_appointments,
    "/get_appointments": get_appointments,
    "/make_appointment": appointments.make_appointment,
}
POST_ENDPOINTS: dict[str, Callable[[Context], Response]] = {
    "/get_session": get_session,
    **OPERATION_ENDPOINTS,
    "/cleanup": cleanup,
    "/cleanup_orphaned_processes": cleanup_orphaned_processes,
    "/emergency_recovery": emergency_recovery,
}
