"""Appointment checks, for the kinds that make them (a single check, and the availability
run's check per container). Nothing is ever booked.

A check is sent only when it can succeed: the appointment page picks the terminal by its
E-Modal name (a code without one is not sent), an export needs its booking number, and an
account whose trucking company or plate the page refused sends none until someone fixes it —
a failed check poisons the account's browser for everyone about ten minutes later."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from sessions_app.models import Account
from sessions_app.upstream import UpstreamError, UpstreamRejected

from .. import parsing
from ..engine.steps import Outcome, QueryFailed, StepContext
from ..models import AppointmentCheck, Query, QueryFile, Terminal
from ..results import save_file
from .answers import read_answer
from .names import ambiguous, keep_listed_options

logger = logging.getLogger(__name__)

# Upstream seconds of a check, in proportion to the other steps (only proportions matter).
CHECK_SECONDS = 35
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


# The appointment page refusing a field of the account (the same for every container): which
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
    try:
        body = ctx.call(lambda api, sid: api.check_appointments(sid, **fields))
    except UpstreamRejected as exc:
        return refused(query, checks, account, row, exc)
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


def refused(
    query: Query,
    checks: Checks,
    account: Account,
    row: AppointmentCheck,
    exc: UpstreamRejected,
) -> Outcome:
    """The page refused the check. A refused account field stops the query's other checks
    (each would fail alike) and flags the account for staff; anything else fails this one."""
    keep_listed_options(account, exc)
    field = refused_account_field(exc)
    reason = ""
    if field is not None:
        reason = (
            f"E-Modal's appointment page refused the account's {field} "
            f"({exc.readable()}); ask {settings.PORTAL_STAFF_CONTACT} to correct it"
        )[:255]
        Account.objects.filter(pk=account.pk).update(
            appointment_error=reason, appointment_error_at=timezone.now()
        )
        logger.warning("account %s: appointment checks stopped (%s)", account.pk, field)
    if checks.single:
        raise QueryFailed(f"Appointment check failed: {exc.readable()}")
    row.success = False
    row.outcome = AppointmentCheck.Outcome.FAILED
    row.error = exc.readable()[:255]
    if field is None:
        return moved_on(checks, checks.index + 1, write_checks(query, [row]))
    rest = stop_checks(query, checks, checks.index + 1, reason)
    stop = rest.write

    def write() -> None:
        write_checks(query, [row])()
        if stop is not None:
            stop()

    return Outcome(rest.next_step, write, progress_done=rest.progress_done)


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
