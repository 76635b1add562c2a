"""The appointment page: ``check_appointments`` (three phases, nothing booked; L7407-8250) and
``make_appointment`` (the same page, then Submit; L8258-8538).

How the page picks what it is sent (the real routines, quirks included):

- Trucking, Terminal, Move and (booking) Appointment use one dropdown routine (L2448-2570):
  exact on the option text after turning `` - ``, `` -``, ``- `` into ``-`` and trimming, then
  on the text as sent (case-sensitive, three tries 1 s apart); else the first option that
  *contains* the value; else ``Option 'X' not found in <Label>. Available options: <first 10>``.
  A value containing ``'`` breaks the page's XPath: Selenium's invalid-selector text, every
  time.
- The truck plate is never refused (L2905-3066): ``ABC123`` (any case) or a blank plate means
  "any plate" (the first listed); else the first listed plate containing the typed text; else
  the first listed plate, silently; with no plates listed the typed text stays.
- What the page really selected is recorded in the call history (``selected``); the answer
  echoes what was sent.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from . import data, texts
from .config import INVALID_BOOKING_PREFIX
from .core import ApiError, Context, Response, collided, debug_bundle
from .state import BrowserGone, HtmlCrash, Session, Workflow

# Seconds of each step of the page (the fixed waits of the real code, L2165, L2589, L2806,
# L7617, L7926, L8113, plus the time the steps themselves take). A call's configured latency
# (check_appointments_import / _export, make_appointment) is shared out in these proportions.
IMPORT_STEPS = {
    "page": 30.0,  # app context, then the appointment page and its 30 s wait
    "phase1": 5.0,  # -> missing Phase-1 fields are answered here, ~35 s in
    "trucking": 2.5,
    "terminal": 2.5,
    "move": 2.5,
    "container": 4.0,  # 3 s before the field, typing, Enter
    "next1": 26.0,  # the click, then 25 s for the stepper
    "phase2": 5.0,
    "checkbox": 1.0,
    "pin": 1.0,
    "plate": 2.5,  # -> a missing plate is answered before this step, ~80 s in
    "chassis": 1.0,
    "next2": 26.0,
    "phase3": 5.0,
    "times": 2.0,
}
EXPORT_STEPS = {
    "page": 30.0,
    "phase1": 5.0,
    "trucking": 2.5,
    "terminal": 2.5,
    "move": 2.5,
    "booking": 4.0,
    "booking_check": 0.5,  # a click on the page, then the "No open transactions" dialog
    "quantity_wait": 5.0,
    "quantity": 1.0,
    "next1": 26.0,
    "phase2": 5.0,
    "checkbox": 1.0,
    "unit": 1.0,
    "seals": 1.0,
    "plate": 2.5,
    "chassis": 1.0,
    "next2": 26.0,
    "phase3": 5.0,
    "calendar": 1.0,
}
MAKE_STEPS = {
    **{k: v for k, v in IMPORT_STEPS.items() if k not in ("times",)},
    "appointment": 2.5,
    "submit": 3.5,  # the click, then 3 s (L3520-3537)
}
# Steps off the usual path, in the same seconds.
EXTRA_STEPS = {
    "dropdown_retries": 3.0,  # no exact match: three more looks, 1 s apart
    "line": 2.5,
    "line_wait": 2.0,
    "equip": 2.5,
    "quantity": 1.0,
}
MOVE_TYPES = data.MOVE_TYPES
PHASE1 = (
    ("trucking", "Trucking", "trucking_company"),
    ("terminal", "Terminal", "terminal"),
    ("move", "Move", "move_type"),
)
# How each endpoint names a Phase-1 dropdown step in its errors.
CHECK_NAMES = {"trucking": "Trucking company", "terminal": "Terminal", "move": "Move type"}
MAKE_NAMES = {"trucking": "Trucking", "terminal": "Terminal", "move": "Move type"}
DATE_RE = re.compile(r"\d\d/\d\d/\d{4}")


class Refused(Exception):
    """A page step failed: its own error text (the endpoint adds its prefix)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def normalized(value: str) -> str:
    return value.replace(" - ", "-").replace(" -", "-").replace("- ", "-").strip()


def pick_option(options: list[str], value: str) -> tuple[str | None, bool]:
    """select_dropdown_by_text's choice: (the option selected or None, whether it was an
    exact match)."""
    wanted = normalized(value)

    def space(text: str) -> str:  # XPath normalize-space()
        return " ".join(text.split())

    exact = [o for o in options if space(o) == wanted]
    if not exact and wanted != value:
        exact = [o for o in options if space(o) == value]
    if exact:
        return exact[0], True
    partial = [o for o in options if wanted in o]
    if not partial and wanted != value:
        partial = [o for o in options if value in o]
    return (partial[0] if partial else None), False


def pick_plate(value: Any, plates: list[str]) -> tuple[str, str]:
    """fill_truck_plate's choice: (the plate left in the field, how it got there)."""
    if not isinstance(value, str):
        raise Refused(f"'{type(value).__name__}' object has no attribute 'upper'")
    if value.upper() == "ABC123" or value.strip() == "":
        if not plates:
            raise Refused(texts.NO_PLATES)
        return plates[0], "any"
    # A plate with a quote breaks the contains() query; the routine then takes any plate.
    matches = [] if "'" in value else [p for p in plates if value in p]
    if matches:
        return matches[0], "match"
    if plates:
        return plates[0], "substituted"
    return value, "typed"


class Page:
    """One call's walk over the appointment page: the time of each step, the glitch that
    may strike it, and whether the browser still shows this workflow's page."""

    def __init__(
        self,
        ctx: Context,
        session: Session,
        steps: dict[str, float],
        latency: str,
        intact: bool,
        *,
        stretch: bool = True,
    ) -> None:
        self.ctx = ctx
        self.session = session
        self.steps = steps
        # A "delay" fault stretches the whole walk (a booking spends it after Submit instead).
        extra = ctx.call.extra_delay if stretch else 0.0
        self.scale = (ctx.state.config.latency(latency) + extra) / sum(steps.values())
        self.intact = intact
        self.selected: dict[str, Any] = {}
        ctx.call.selected = self.selected

    def seconds(self, step: str) -> float:
        return self.steps.get(step, EXTRA_STEPS.get(step, 0.0)) * self.scale

    def pause(self, step: str) -> None:
        """A plain ``time.sleep`` of the server: no driver command, nothing can fail."""
        self.ctx.state.sleep(self.seconds(step), None)

    def act(self, step: str) -> None:
        """Driver commands: a browser gone before or during the step fails it."""
        self.ctx.state.sleep(self.seconds(step), self.session)

    def stale(self, step: str) -> None:
        glitch = self.ctx.glitch("stale", step)
        if glitch is not None:
            raise Refused(glitch.exception)

    def dropdown(self, step: str, label: str, value: Any, options: list[str]) -> str:
        """select_dropdown_by_text (L2448-2570), with its glitches."""
        ctx = self.ctx
        self.act(step)
        if ctx.glitch("dropdown_missing", step) is not None or not self.intact:
            raise Refused(texts.dropdown_missing(label))
        self.stale(step)
        if not isinstance(value, str):
            raise Refused(f"'{type(value).__name__}' object has no attribute 'replace'")
        wanted = normalized(value)
        if "'" in wanted:
            raise Refused(
                texts.invalid_selector(f"//mat-option//span[normalize-space(text())='{wanted}']")
            )
        if ctx.glitch("options_empty", step) is not None:
            self.act("dropdown_retries")
            raise Refused(texts.option_missing(value, label, []))
        choice, exact = pick_option(options, value)
        if not exact:
            self.act("dropdown_retries")
        if choice is None:
            raise Refused(texts.option_missing(value, label, options))
        return choice

    def plate(self, value: Any, plates: list[str]) -> str:
        self.act("plate")
        if self.ctx.glitch("plate_field") is not None or not self.intact:
            raise Refused(texts.PLATE_FIELD_MISSING)
        self.stale("plate")
        chosen, how = pick_plate(value, plates)
        self.selected["truck_plate"] = chosen
        self.selected["truck_plate_choice"] = how
        return chosen

    def chip(self, step: str, value: Any) -> None:
        """Type a container or booking number as a chip and look for it (L2572-2705)."""
        self.act(step)
        self.stale(step)
        if "'" in str(value):
            raise Refused(texts.invalid_selector(f"//mat-chip//span[contains(text(),'{value}')]"))


def _dropdown_options(ctx: Context, step: str) -> list[str]:
    config = ctx.state.config
    return {
        "trucking": list(config.trucking_companies),
        "terminal": list(config.terminals),
        "move": list(MOVE_TYPES),
    }[step]


def _accepted(ctx: Context, session: Session, container_id: Any) -> dict[str, str] | None:
    """Whether E-Modal takes the container for an import visit: one of the account's imports,
    its number exactly as the sheet writes it. (The terminal is not checked.)"""
    if not isinstance(container_id, str):
        return None
    row = ctx.state.sheet(session.username).find(container_id)
    if row is None or row["Trade Type"] != "IMPORT":
        return None
    return row


def _slots(ctx: Context, session: Session, container_id: str, terminal: str) -> list[str]:
    sheet = ctx.state.sheet(session.username)
    hidden = sheet.hidden.get(container_id)
    return data.available_times(
        container_id,
        terminal,
        ctx.state.config,
        dt.datetime.now().astimezone(),
        has_slots=hidden.has_slots if hidden is not None else True,
        version=hidden.slot_version if hidden is not None else 0,
    )


def _screenshot(ctx: Context, tag: str) -> str:
    """A page screenshot copied to the downloads folder under its bare name (L8186-8215)."""
    now = dt.datetime.now().astimezone()  # the server's naive local time
    png = data.png_bytes(96, 48, data.stable_int(ctx.call.id, tag))
    name = ctx.state.store_named(f"{now:%Y%m%d_%H%M%S_%f}_{tag}.png", png, data.PNG_CONTENT_TYPE)
    return ctx.file_url(name)


# --------------------------------------------------------------- check_appointments


def check_appointments(ctx: Context) -> Response:
    """Three phases, nothing booked. The poison sweep has already run (the HTTP layer runs
    it first, even for calls then refused)."""
    state, body, call = ctx.state, ctx.body, ctx.call
    container_type = body.get("container_type", "")
    if not isinstance(container_type, str):
        raise ApiError(
            500,
            f"Unexpected error: '{type(container_type).__name__}' object has no attribute 'lower'",
            current_phase=0,
        )
    container_type = container_type.lower()
    if container_type not in ("import", "export"):
        raise ApiError(400, texts.CONTAINER_TYPE)
    is_import = container_type == "import"

    workflow = state.workflow(body.get("appointment_session_id"))
    if workflow is not None:
        intact = state.resume_workflow(workflow, call)
        session, is_new = workflow.session, False
    else:
        session, is_new = state.acquire(body, call)
        workflow = state.register_workflow(session)
        intact = True
    ctx.session, ctx.is_new = session, is_new
    page = Page(
        ctx,
        session,
        IMPORT_STEPS if is_import else EXPORT_STEPS,
        f"check_appointments_{container_type}",
        intact,
    )
    ids: dict[str, Any] = {
        "session_id": session.session_id,
        "is_new_session": is_new,
        "appointment_session_id": workflow.appointment_session_id,
    }

    def failure(ctx: Context, exc: str) -> ApiError:
        return ApiError(
            500, f"Phase 1 failed - {CHECK_NAMES['trucking']}: {exc}", **ids, current_phase=1
        )

    try:
        try:
            if ctx.glitch("html500"):
                raise HtmlCrash("glitch")
            result = _check(ctx, page, workflow, container_type, ids)
        except ApiError as error:
            state.end_workflow(workflow, succeeded=False, error=error.payload["error"])
            garbage = collided(ctx, failure)
            if garbage is not None:
                return garbage
            raise
        except HtmlCrash:
            state.end_workflow(workflow, succeeded=False, error="HTML 500")
            raise
        state.end_workflow(workflow, succeeded=True)
        garbage = collided(ctx, failure)
        if garbage is not None:
            return garbage
        if call.answer_fields:
            result.update(call.answer_fields)
        return Response.json(result)
    finally:
        state.release(session, call)


def _check(
    ctx: Context, page: Page, workflow: Workflow, container_type: str, ids: dict[str, Any]
) -> dict[str, Any]:
    state, body = ctx.state, ctx.body
    session = page.session
    is_import = container_type == "import"
    key = "container_id" if is_import else "booking_number"
    # Where a browser lost now would be noticed: the next step that drives it.
    where: dict[str, Any] = {"prefix": "Phase 1 failed - Trucking company", "phase": 1}

    def fail(status: int, error: str, phase: int, **extra: Any) -> ApiError:
        return ApiError(status, error, **ids, current_phase=phase, **extra)

    try:
        if workflow.phase == 1 and not ctx.call.resumed:
            where.update(prefix="Navigation failed: Navigation failed", phase=1)
            page.act("page")
            glitch = ctx.glitch("navigation")
            if glitch is not None:
                raise fail(500, f"Navigation failed: {texts.navigation_error(glitch.exception)}", 1)
            session.page = "appointment"
            workflow.on_page = True

        if workflow.phase == 1:
            where.update(prefix=f"Phase 1 failed - {CHECK_NAMES['trucking']}", phase=1)
            page.pause("phase1")
            glitch = ctx.glitch("unexpected")
            if glitch is not None:
                raise ApiError(
                    500,
                    f"Unexpected error: {glitch.exception}",
                    current_phase=1,
                    appointment_session_id=ids["appointment_session_id"],
                    session_id=ids["session_id"],
                )
            missing = [name for _, _, name in PHASE1 if not body.get(name)]
            if not body.get(key):
                missing.append(key)
            if missing:
                names = ", ".join(missing)
                raise fail(
                    400,
                    f"Missing required fields for Phase 1: {names}",
                    1,
                    message=f"Please provide {names} and retry with appointment_session_id",
                )
            for step, label, name in PHASE1:
                prefix = f"Phase 1 failed - {CHECK_NAMES[step]}"
                where.update(prefix=prefix)
                try:
                    page.selected[name] = page.dropdown(
                        step, label, body.get(name), _dropdown_options(ctx, step)
                    )
                except Refused as refused:
                    raise fail(500, f"{prefix}: {refused.text}", 1) from None
            identifier = body.get(key)
            page.selected[key] = identifier
            accepted = _phase1_container(ctx, page, session, is_import, identifier, fail, where)
            where.update(prefix="Phase 1 failed - Next button")
            page.act("next1")
            try:
                page.stale("next1")
            except Refused as refused:
                raise fail(500, f"Phase 1 failed - Next button: {refused.text}", 1) from None
            if not accepted:
                # Not taken: the fields are filled again, Next once more (L7849-7880).
                for step, _, _ in PHASE1:
                    page.act(step)
                page.act("container" if is_import else "booking")
                page.act("next1")
                raise fail(
                    500, f"Phase 1 failed - Next button (after retry): {texts.not_advanced(1)}", 1
                )
            workflow.phase = 2
            workflow.phase_data.update(
                {
                    "container_type": container_type,
                    "trucking_company": body.get("trucking_company"),
                    "terminal": body.get("terminal"),
                    "move_type": body.get("move_type"),
                    key: identifier,
                }
            )

        if workflow.phase == 2:
            where.update(prefix="Phase 2 failed - Checkbox", phase=2)
            page.pause("phase2")
            truck_plate = body.get("truck_plate")
            own_chassis = body.get("own_chassis")
            page.act("checkbox")
            if not page.intact:
                raise fail(500, f"Phase 2 failed - Checkbox: {texts.CHECKBOX_MISSING}", 2)
            try:
                page.stale("checkbox")
            except Refused as refused:
                raise fail(500, f"Phase 2 failed - Checkbox: {refused.text}", 2) from None
            if is_import:
                page.act("pin")  # empty -> 1111; a page without the field skips it
            else:
                page.act("unit")
                page.act("seals")
            if not truck_plate:
                raise fail(
                    400,
                    texts.PLATE_MISSING,
                    2,
                    message="Please provide truck_plate and retry with appointment_session_id",
                )
            where.update(prefix="Phase 2 failed - Truck plate")
            try:
                page.plate(truck_plate, data.truck_plates(session.username, state.config))
            except Refused as refused:
                raise fail(500, f"Phase 2 failed - Truck plate: {refused.text}", 2) from None
            if not _ignored(own_chassis):
                where.update(prefix="Phase 2 failed - Own chassis")
                page.act("chassis")
            where.update(prefix="Phase 2 failed - Next button")
            page.act("next2")
            try:
                page.stale("next2")
            except Refused as refused:
                raise fail(500, f"Phase 2 failed - Next button: {refused.text}", 2) from None
            workflow.phase = 3
            phase_data: dict[str, Any] = {"truck_plate": truck_plate, "own_chassis": own_chassis}
            if is_import:
                if body.get("pin_code"):
                    phase_data["pin_code"] = body.get("pin_code")
            else:
                phase_data["unit_number"] = body.get("unit_number", "1")
                phase_data["seal_value"] = body.get("seal_value", "1")
            workflow.phase_data.update(phase_data)

        where.update(prefix="Phase 3 failed", phase=3)
        page.pause("phase3")
        result: dict[str, Any] = {
            "success": True,
            "container_type": container_type,
            **{k: ids[k] for k in ("session_id", "is_new_session", "appointment_session_id")},
            "phase_data": workflow.phase_data,
        }
        if is_import:
            page.act("times")
            if ctx.glitch("time_dropdown") is not None or not page.intact:
                raise fail(500, f"Phase 3 failed: {texts.TIME_DROPDOWN_MISSING}", 3)
            terminal = page.selected.get("terminal") or str(workflow.phase_data.get("terminal"))
            times = _slots(ctx, session, str(workflow.phase_data.get("container_id")), terminal)
            result |= {
                "available_times": times,
                "count": len(times),
                "dropdown_screenshot_url": _screenshot(ctx, "appointment_dropdown_opened"),
            }
        else:
            found = page.intact
            try:
                page.act("calendar")
            except BrowserGone:
                found = False  # find_element raised inside its own try: "not found"
            if ctx.glitch("calendar_missed") is not None:
                found = False
            result |= {
                "calendar_found": found,
                "calendar_screenshot_url": _screenshot(ctx, "calendar_opened") if found else None,
            }
        if ctx.call.debug:
            appointment_id = ids["appointment_session_id"]
            result["debug_bundle_url"] = debug_bundle(
                ctx, lambda ts: f"{appointment_id}_{ts}_check_appointments.zip", absolute=True
            )
        return result
    except BrowserGone as gone:
        error = fail(500, f"{where['prefix']}: {gone.text}", where["phase"])
        error.outcome = gone.outcome
        raise error from None


def _ignored(own_chassis: Any) -> bool:
    return own_chassis is None or (isinstance(own_chassis, str) and own_chassis.lower() == "ignore")


def _phase1_container(
    ctx: Context,
    page: Page,
    session: Session,
    is_import: bool,
    identifier: Any,
    fail: Any,
    where: dict[str, Any],
) -> bool:
    """The container (import) or booking number (export) of Phase 1; whether E-Modal will
    take the step."""
    body = ctx.body
    if not is_import:
        where.update(prefix="Phase 1 failed - Booking number")
        try:
            page.chip("booking", identifier)
        except Refused as refused:
            raise fail(500, f"Phase 1 failed - Booking number: {refused.text}", 1) from None
        page.pause("booking_check")
        if str(identifier).startswith(INVALID_BOOKING_PREFIX):
            ctx.state.not_in_use(session)  # L7814
            raise fail(
                400,
                texts.BOOKING_INVALID,
                1,
                error_message=texts.NO_OPEN_TRANSACTIONS,
                # L7824: the screenshot is saved under a time-stamped name; this one 404s.
                screenshot_url=ctx.file_url(f"{session.session_id}/booking_number_error.png"),
            )
        page.pause("quantity_wait")
        where.update(prefix="Phase 1 failed - Quantity")
        page.act("quantity")
        return True
    terminal = page.selected.get("terminal", "")
    if terminal in data.NO_CONTAINER_FIELD_TERMINALS:
        page.act("container")
        line, equip = body.get("line"), body.get("equip_size")
        if not (line and equip):
            raise fail(400, texts.CONTAINER_FIELD, 1, message=texts.CONTAINER_FIELD_MESSAGE)
        # Autocomplete fields: exact, contains, else the first option; they never fail.
        where.update(prefix="Phase 1 failed - Line")
        page.act("line")
        page.pause("line_wait")
        where.update(prefix="Phase 1 failed - Equip Size")
        page.act("equip")
        where.update(prefix="Phase 1 failed - Quantity")
        page.act("quantity")
        page.selected |= {"line": line, "equip_size": equip}
        return True
    where.update(prefix="Phase 1 failed - Container")
    try:
        page.chip("container", identifier)
    except Refused as refused:
        raise fail(500, f"Phase 1 failed - Container: {refused.text}", 1) from None
    return _accepted(ctx, session, identifier) is not None


# ----------------------------------------------------------------- make_appointment

MAKE_FIELDS = (
    "trucking_company",
    "terminal",
    "move_type",
    "container_id",
    "truck_plate",
    "appointment_time",
)


def make_appointment(ctx: Context) -> Response:
    """Books: the page's three phases, then Submit. The poison sweep has already run."""
    state, body, call = ctx.state, ctx.body, ctx.call
    missing = [name for name in MAKE_FIELDS if not body.get(name)]
    if missing:
        raise ApiError(400, f"Missing required fields: {', '.join(missing)}")
    session, is_new = state.acquire(body, call)
    ctx.session, ctx.is_new = session, is_new
    # Its workflow is made but never registered (L8353-8360): no resume, no poison.
    appointment_id = f"appt_{session.session_id}_{int(time.time())}"
    page = Page(ctx, session, MAKE_STEPS, "make_appointment", True, stretch=False)

    def failure(ctx: Context, exc: str) -> ApiError:
        return ApiError(500, f"Phase 1 - Trucking: {exc}")

    try:
        try:
            if ctx.glitch("html500"):
                raise HtmlCrash("glitch")
            result = _make(ctx, page, session, appointment_id)
        except ApiError:
            garbage = collided(ctx, failure)
            if garbage is not None:
                return garbage
            raise
        garbage = collided(ctx, failure)
        if garbage is not None:
            return garbage
        if call.answer_fields:
            result.update(call.answer_fields)
        return Response.json(result)
    finally:
        state.release(session, call)


def _make(ctx: Context, page: Page, session: Session, appointment_id: str) -> dict[str, Any]:
    state, body = ctx.state, ctx.body
    where = {"prefix": "Navigation failed: Navigation error"}
    try:
        page.act("page")
        glitch = ctx.glitch("page_setup")
        if glitch is not None:
            raise ApiError(401, f"Authentication failed: {glitch.exception}")
        glitch = ctx.glitch("navigation")
        if glitch is not None:
            raise ApiError(500, f"Navigation failed: {texts.navigation_error(glitch.exception)}")
        session.page = "appointment"
        where["prefix"] = "Phase 1 - Trucking"
        page.pause("phase1")
        glitch = ctx.glitch("unexpected")
        if glitch is not None:
            raise ApiError(
                500,
                f"Unexpected error: {glitch.exception}",
                session_id=session.session_id,
                is_new_session=ctx.is_new,
            )
        for step, label, name in PHASE1:
            prefix = f"Phase 1 - {MAKE_NAMES[step]}"
            where["prefix"] = prefix
            try:
                page.selected[name] = page.dropdown(
                    step, label, body.get(name), _dropdown_options(ctx, step)
                )
            except Refused as refused:
                raise ApiError(500, f"{prefix}: {refused.text}") from None
        container_id = body.get("container_id")
        page.selected["container_id"] = container_id
        where["prefix"] = "Phase 1 - Container"
        if page.selected["terminal"] in data.NO_CONTAINER_FIELD_TERMINALS:
            page.act("container")
            raise ApiError(500, f"Phase 1 - Container: {texts.CONTAINER_FIELD_MISSING}")
        try:
            page.chip("container", container_id)
        except Refused as refused:
            raise ApiError(500, f"Phase 1 - Container: {refused.text}") from None
        where["prefix"] = "Phase 1 - Next"
        page.act("next1")
        try:
            page.stale("next1")
        except Refused as refused:
            raise ApiError(500, f"Phase 1 - Next: {refused.text}") from None
        if _accepted(ctx, session, container_id) is None:
            # No re-fill and retry here (L8415-8418).
            raise ApiError(500, f"Phase 1 - Next: {texts.not_advanced(1)}")

        where["prefix"] = "Phase 2 - Checkbox"
        page.pause("phase2")
        page.act("checkbox")
        try:
            page.stale("checkbox")
        except Refused as refused:
            raise ApiError(500, f"Phase 2 - Checkbox: {refused.text}") from None
        page.act("pin")  # empty -> 1111
        where["prefix"] = "Phase 2 - Truck plate"
        try:
            page.plate(body.get("truck_plate"), data.truck_plates(session.username, state.config))
        except Refused as refused:
            raise ApiError(500, f"Phase 2 - Truck plate: {refused.text}") from None
        if not _ignored(body.get("own_chassis")):
            where["prefix"] = "Phase 2 - Own chassis"
            page.act("chassis")
        where["prefix"] = "Phase 2 - Next"
        page.act("next2")
        try:
            page.stale("next2")
        except Refused as refused:
            raise ApiError(500, f"Phase 2 - Next: {refused.text}") from None

        where["prefix"] = "Phase 3 - Appointment time"
        page.pause("phase3")
        slots = _slots(ctx, session, str(container_id), page.selected["terminal"])
        try:
            slot = page.dropdown("appointment", "Appointment", body.get("appointment_time"), slots)
        except Refused as refused:
            raise ApiError(500, f"Phase 3 - Appointment time: {refused.text}") from None
        page.selected["appointment_time"] = slot
        where["prefix"] = "Phase 3 - Submit"
        page.act("submit")  # the button is found and clicked: the form goes in now
        booked = _submit(ctx, page, session)
        page.selected["booked"] = booked
        glitch = ctx.glitch("submit")
        if glitch is not None or ctx.call.book_then_fail:
            # The click raised although the form went through (L3528-3537).
            exc = glitch.exception if glitch is not None else texts.RENDERER_TIMEOUT
            raise ApiError(500, f"Phase 3 - Submit: {exc}")
        page.pause("phase3")  # 3 s after the click, a screenshot; nothing reads the page
    except BrowserGone as gone:
        error = ApiError(500, f"{where['prefix']}: {gone.text}")
        error.outcome = gone.outcome
        raise error from None
    # A delay fault keeps the answer, not the booking: no request timeout on the server.
    state.sleep(ctx.call.extra_delay, None)
    bundle = debug_bundle(
        ctx, lambda ts: f"{appointment_id}_{ts}_appointment_submitted.zip", absolute=True
    )
    return {
        "success": True,
        "session_id": session.session_id,
        "is_new_session": ctx.is_new,
        "appointment_confirmed": True,
        "debug_bundle_url": bundle,
        "appointment_details": {
            name: body.get(name)
            for name in (
                "trucking_company",
                "terminal",
                "move_type",
                "container_id",
                "truck_plate",
                "own_chassis",
                "appointment_time",
            )
        },
    }


def _submit(ctx: Context, page: Page, session: Session) -> bool:
    """E-Modal takes the visit with what the page selected; the placeholder "slot" of a day
    without slots is no visit (E-Modal refuses it; the answer says nothing either way)."""
    slot = page.selected["appointment_time"]
    if slot in (data.NO_SLOTS, data.NO_SLOTS_PLAIN):
        return False
    date = DATE_RE.search(slot)
    row = {
        "Appointment #": f"APT{data.stable_int(ctx.call.id, time.time()) % 10**8:08d}",
        "Container #": str(page.selected["container_id"]),
        "Trade Type": "IMPORT",
        "Terminal": page.selected["terminal"],
        "Move Type": page.selected["move_type"],
        "Appointment Date": date.group(0) if date else "",
        "Time Slot": slot,
        "Status": "SCHEDULED",
        "Truck Plate": page.selected["truck_plate"],
        "Trucking Company": page.selected["trucking_company"],
    }
    record = {"call_id": ctx.call.id, "username": session.username, "selected": dict(page.selected)}
    ctx.state.book(session.username, row, record)
    return True


__all__ = ["check_appointments", "make_appointment", "pick_option", "pick_plate"]
