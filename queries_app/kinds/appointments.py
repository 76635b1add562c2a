"""Appointments: the account's appointments sheet. The upstream hands back the newest sheet its
browser downloaded when the export failed: a sheet whose header is not an appointments export
is refused (worth another try), never stored as appointments."""

from __future__ import annotations

import io
from collections.abc import Callable

from sessions_app.upstream import UpstreamUnavailable

from .. import parsing
from ..engine.steps import DONE, Outcome, QueryFailed, StepContext
from ..models import AppointmentRow, QueryFile
from ..registry import QueryKind, Step, register
from ..results import XLSX, insert_rows, save_file
from .params import NoParams

# The contract's timings (upstream seconds): 10-40 s.
SHEET_SECONDS = 20


def read_appointments(ctx: StepContext) -> Callable[[], None]:
    """A write that stores the account's appointments sheet on the query."""
    query = ctx.query
    body = ctx.call(lambda api, sid: api.get_appointments(sid))
    content = ctx.download(body["file_url"])
    try:
        header, raw_rows = parsing.read_sheet(io.BytesIO(content))
        if not parsing.is_appointments_header(header):
            raise UpstreamUnavailable(
                "E-Modal handed back another spreadsheet instead of the appointments export "
                f"(columns: {', '.join(name for name in header if name)[:120] or 'none'})"
            )
        rows = [
            {"query": query.pk, "row_number": n, **parsing.appointment_fields(raw)}
            for n, raw in enumerate(raw_rows, start=1)
        ]
    except parsing.SheetError as exc:
        raise QueryFailed(f"The appointments sheet cannot be read: {exc}.") from None

    def write() -> None:
        AppointmentRow.objects.filter(query=query).delete()
        insert_rows(AppointmentRow, rows)
        save_file(query, QueryFile.Kind.APPOINTMENTS_SHEET, "appointments.xlsx", content, XLSX)

    return write


def appointments(ctx: StepContext) -> Outcome:
    return Outcome(DONE, read_appointments(ctx), progress_done=1, progress_total=1)


APPOINTMENTS = register(
    QueryKind(
        code="appointments",
        label="Appointments",
        params=NoParams,
        steps={"appointments": Step(appointments, "Reading the appointments sheet", SHEET_SECONDS)},
        first_step="appointments",
        help_text="The account's appointments, as E-Modal lists them.",
        order=30,
    )
)
