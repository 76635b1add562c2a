"""Appointment checks, for the kinds that make them (a single check, and the availability
run's check per container). Nothing is ever booked.

A check is sent only when it can succeed: the appointment page picks the terminal by its
E-Modal name (a code without one is not sent), an export needs its booking number, and an
account whose trucking company the page does not list sends none until someone fixes it.

A failed check leaves its workflow held on the account's browser, which the upstream closes
about ten minutes later: a check is never re-sent. A glitch of the page (a dropdown not
rendered yet, a stale element) is resumed once with the workflow it left, at once, on the same
browser; otherwise the container's check is recorded as failed and the run goes on. Never more
than `MAX_CALLS` calls for one container in one run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from sessions_app.models import Account
from sessions_app.services import hold_workflow, release_workflow
from sessions_app.upstream import (
    Disposition,
    EModalClient,
    SessionGone,
    UpstreamError,
    UpstreamTimeout,
    WrongValue,
)

from .. import parsing
from ..engine.steps import Outcome, QueryFailed, StepContext
from ..models import AppointmentCheck, Query, QueryFile, Terminal
from ..results import save_file
from .answers import read_answer
from .names import ambiguous, keep_listed_options

logger = logging.getLogger(__name__)

# Upstream seconds of a check, in proportion to the other steps (only proportions matter).
CHECK_SECONDS = 35
# `check_appointments` calls for one container in one run: the check, and one resume.
MAX_CALLS = 2
# The appointment page's dropdowns whose value is the account's, not the container's.
ACCOUNT_DROPDOWNS = {"Trucking": "trucking company"}
# The contract's types of the answer's fields the portal reads.
ANSWER_TYPES = {
    "available_times": (list, type(None)),
    "calendar_found": parsing.FLAG_OR_NULL,
    "dropdown_screenshot_url": parsing.TEXT_OR_NULL,
    "calendar_screenshot_url": parsing.TEXT_OR_NULL,
}


@dataclass(frozen=True)
class Checks:
    """The checks a query makes: its items (what `plan` items hold: container, container_type,
    move_type, terminal_code, booking_number, line, equip_size), the one due now, where the
    query goes after `done` of them, and whether a failure fails the query (a single check) or
    is recorded against its container (a run of them)."""

    items: list[dict[str, Any]]
    index: int
    after: Callable[[int], str]
    single: bool

    @property
    def item(self) -> dict[str, Any]:
        return self.items[self.index]


def terminal_name(code: str) -> str | None:
    """The E-Modal name of an active terminal code, if staff have given it one."""
    return (
        Terminal.objects.filter(code=code, active=True)
        .exclude(name="")
        .values_list("name", flat=True)
        .first()
    )


def write_checks(
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


def new_check(query: Query, item: dict[str, Any], **outcome: Any) -> AppointmentCheck:
    return AppointmentCheck(
        query=query,
        container_number=item["container"],
        trade_type=item["container_type"].upper(),
        move_type=item["move_type"],
        terminal_code=item.get("terminal_code", ""),
        booking_number=item["booking_number"],
        note=item.get("note", ""),
        **outcome,
    )


def not_sent(query: Query, item: dict[str, Any], reason: str) -> AppointmentCheck:
    return new_check(
        query, item, success=False, outcome=AppointmentCheck.Outcome.NOT_SENT, error=reason[:255]
    )


def moved_on(checks: Checks, done: int, write: Callable[[], None], note: str = "") -> Outcome:
    return Outcome(checks.after(done), write, progress_done=done, note=note)


def stop_checks(query: Query, checks: Checks, index: int, reason: str) -> Outcome:
    """The account's own set-up makes every remaining check fail the same way: record them as
    not sent, and go on with the query's next step."""
    rows = [not_sent(query, item, f"Not checked: {reason}") for item in checks.items[index:]]
    return moved_on(checks, len(checks.items), write_checks(query, rows))


def unsendable(item: dict[str, Any]) -> tuple[str | None, str]:
    """(the terminal's E-Modal name, "") for a check that can be sent, else (None, why not)."""
    if item["container_type"] == "export" and not item["booking_number"]:
        return None, "No booking number is known for this export container."
    code = item.get("terminal_code", "")
    if not code:
        return None, "No terminal is known for it (the sheet's terminal cells are N/A)."
    name = terminal_name(code)
    if name is None:
        return None, (
            f"Terminal code {code} has no E-Modal name in the portal yet: ask "
            f"{settings.PORTAL_STAFF_CONTACT} to name it, then run again."
        )
    return name, ""


def check_fields(account: Account, item: dict[str, Any], terminal: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "container_type": item["container_type"],
        "trucking_company": account.trucking_company,
        "terminal": terminal,
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
    return fields


def check(ctx: StepContext, checks: Checks) -> Outcome:
    """Make the check due now (or record why it is not sent)."""
    query, item, done = ctx.query, checks.item, checks.index + 1
    account = Account.objects.defer(*Account.SECRET_FIELDS).get(pk=query.account_id)
    if account.appointment_error:
        if checks.single:
            raise QueryFailed(f"Not checked: {account.appointment_error}")
        return stop_checks(query, checks, checks.index, account.appointment_error)
    name, reason = unsendable(item)
    if name is not None and (reason := ambiguous(account, name)):
        name = None
    if name is None:
        if checks.single:
            raise QueryFailed(reason)
        return moved_on(checks, done, write_checks(query, [not_sent(query, item, reason)]))
    row = new_check(query, item, terminal=name)
    fields = check_fields(account, item, name)
    sent: list[str] = []
    try:
        body = send(ctx, fields, sent)
    except WrongValue as exc:
        return wrong_value(query, checks, account, row, exc)
    except UpstreamError as exc:
        if not sent or not exc.counts_as_failure or unreached(exc):
            # No check reached the page (a login failed, the breaker is open, the server could
            # not be reached): the step is tried again later, as any step.
            raise
        return failed(query, checks, row, exc, sent)
    problems = answer_problems(body)
    if problems:
        # Nothing of it is read: a flag written as text would say "available" (fail closed).
        if checks.single:
            raise QueryFailed(f"Appointment check: {parsing.unreadable(problems)}")
        row.success, row.error = False, parsing.unreadable(problems)
        row.outcome = AppointmentCheck.Outcome.FAILED
        note = f"Container {item['container']}: {row.error}"
        return moved_on(checks, done, write_checks(query, [row]), note=note)
    read_answer(row, item, body)
    screenshot = None
    url = body.get("dropdown_screenshot_url") or body.get("calendar_screenshot_url")
    if url:
        try:
            screenshot = (f"check-{done}.png", ctx.download(url))
        except UpstreamError as exc:
            logger.warning("Query %s: screenshot not kept: %s", query.pk, exc.readable())
    return moved_on(checks, done, write_checks(query, [row], screenshot))


def answer_problems(body: dict[str, Any]) -> list[str]:
    """What is wrong with the types of a check's answer, if anything."""
    problems = parsing.wrong_types(body, ANSWER_TYPES)
    times = body.get("available_times")
    if type(times) is list and any(type(text) is not str for text in times):
        problems.append("an `available_times` entry is not text")
    return problems


def send(ctx: StepContext, fields: dict[str, Any], sent: list[str]) -> dict[str, Any]:
    """The check, and at most one resume of it: `sent` lists the calls made ("check",
    "resume"). The account's lease is held across both, so that nothing else drives the
    browser in between (a resume continues on whatever page the browser shows)."""
    account = ctx.query.account

    def call(api: EModalClient, session_id: str, **resume: str) -> dict[str, Any]:
        sent.append("resume" if resume else "check")
        version = account.session_version
        try:
            return api.check_appointments(session_id, **fields, **resume)
        except UpstreamError as exc:
            # A failed resume leaves the same workflow held: counted once.
            if leaves_workflow(exc) and not resume:
                hold_workflow(account=account, version=version)
            raise

    def operation(api: EModalClient, session_id: str) -> dict[str, Any]:
        # Called again, once, after the session was found gone and replaced.
        if len(sent) >= MAX_CALLS:
            raise SessionGone("The upstream session is gone", endpoint="/check_appointments")
        try:
            return call(api, session_id)
        except UpstreamError as exc:
            if not resumable(exc) or len(sent) >= MAX_CALLS:
                raise
            first = exc
        body = call(api, session_id, appointment_session_id=first.resume_id)
        release_workflow(account=account, version=account.session_version)
        return body

    per_call = ctx.manager.client_for(account).longest_call_seconds()
    return ctx.manager.run(account, operation, call_seconds=MAX_CALLS * per_call + 30)


def leaves_workflow(exc: UpstreamError) -> bool:
    """Whether a failed check left a workflow held on the browser: every failure after the
    session block was accepted (the answer names the workflow; a crash or no answer may)."""
    if isinstance(exc, SessionGone) or not exc.counts_as_failure:
        return False
    return bool(exc.resume_id) or exc.status == 500 or isinstance(exc, UpstreamTimeout)


def unreached(exc: UpstreamError) -> bool:
    """No answer at all, and not for want of time: the server was not reached."""
    return exc.status is None and not isinstance(exc, UpstreamTimeout)


def resumable(exc: UpstreamError) -> bool:
    """A glitch of the page that named its held workflow: resumed once, at once."""
    return bool(exc.resume_id) and exc.disposition is Disposition.TRANSIENT


def wrong_value(
    query: Query,
    checks: Checks,
    account: Account,
    row: AppointmentCheck,
    exc: WrongValue,
) -> Outcome:
    """The page does not list a value it was given (the options it listed are kept). For the
    account's trucking company every other check would fail alike: they stop, and the account
    tells staff which field and the options E-Modal listed. For a container's own value (a
    terminal name) only its check fails."""
    keep_listed_options(account, exc)
    field = ACCOUNT_DROPDOWNS.get(exc.label)
    reason = ""
    if field is not None:
        reason = (
            f"E-Modal does not list the account's {field} “{exc.value}”; ask "
            f"{settings.PORTAL_STAFF_CONTACT} to correct it. E-Modal lists: {exc.options}"
        )[:255]
        Account.objects.filter(pk=account.pk).update(
            appointment_error=reason, appointment_error_at=timezone.now()
        )
        logger.warning("account %s: appointment checks stopped (%s)", account.pk, field)
    if checks.single:
        raise QueryFailed(f"Appointment check failed: {exc.first_line()}")
    row.success = False
    row.outcome = AppointmentCheck.Outcome.FAILED
    row.error = exc.first_line(255)
    if field is None:
        return moved_on(checks, checks.index + 1, write_checks(query, [row]))
    rest = stop_checks(query, checks, checks.index + 1, reason)
    stop = rest.write

    def write() -> None:
        write_checks(query, [row])()
        if stop is not None:
            stop()

    return Outcome(rest.next_step, write, progress_done=rest.progress_done)


def failed(
    query: Query, checks: Checks, row: AppointmentCheck, exc: UpstreamError, sent: list[str]
) -> Outcome:
    """This container's check failed (a glitch, resumed once where it could be, or an answer
    that is final for this container alone): recorded with a readable reason; the run goes
    on, and the next run checks it again."""
    tries = " (and its resume)" if "resume" in sent else ""
    reason = f"E-Modal's page failed{tries}: {exc.first_line()}"
    if checks.single:
        raise QueryFailed(f"Appointment check failed: {reason}")
    row.success = False
    row.outcome = AppointmentCheck.Outcome.FAILED
    row.error = reason[:255]
    return moved_on(checks, checks.index + 1, write_checks(query, [row]))


def give_up(query: Query, checks: Checks, reason: str) -> Outcome:
    """After repeated passing failures on one container: record them against it, go on."""
    row = new_check(
        query,
        checks.item,
        success=False,
        outcome=AppointmentCheck.Outcome.FAILED,
        error=reason[:255],
    )
    return moved_on(checks, checks.index + 1, write_checks(query, [row]))
