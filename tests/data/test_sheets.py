"""The upstream's sheets: the streaming .xlsx reader against openpyxl (the reader the portal
used before), bad files, typing a containers row, and storing the rows."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import Workbook

from emodal_sim import SimConfig
from emodal_sim import data as simdata
from queries_app import parsing, results
from queries_app.models import AppointmentRow, ContainerRow, Query
from queries_app.services import start_query
from sessions_app.models import Account

from ..sim import SimControl
from ..taskqueue import TaskQueue, run_queued_tasks


def sheet_rows(content: bytes) -> list[dict[str, str]]:
    return list(parsing.sheet_rows(io.BytesIO(content)))


def naive(*parts: int) -> dt.datetime:
    return dt.datetime(*parts)  # noqa: DTZ001 - an Excel cell holds no time zone


def saved(workbook: Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# -- sheets the simulator serves ----------------------------------------------------------------


@pytest.mark.parametrize("username", ["alice-emodal", "bench+c1500"])
def test_the_simulators_containers_sheet_reads_as_served(username: str) -> None:
    config = SimConfig()
    served = simdata.containers_for(username, config)
    content = simdata.xlsx_bytes(simdata.COLUMNS, served, "Containers")
    header, rows = parsing.read_sheet(io.BytesIO(content))
    assert header == simdata.COLUMNS
    assert list(rows) == served


def test_the_simulators_appointments_sheet_reads_as_served() -> None:
    config = SimConfig()
    containers = simdata.containers_for("alice-emodal", config)
    served = simdata.appointments_for("alice-emodal", containers, config)
    assert served
    content = simdata.xlsx_bytes(simdata.APPOINTMENT_COLUMNS, served, "Appointments")
    assert sheet_rows(content) == served


# -- workbooks with every kind of cell ----------------------------------------------------------


def typed_workbook() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Text", 2025, None, "  Padded  ", "Number", "When", "Flag", "Vessel Code"])
    sheet.append(
        [
            "  spaces around  ",
            42,
            1.5,
            1e20,
            Decimal("1050.25"),
            naive(2025, 10, 7, 9, 30),
            True,
            9456771,  # a number cell where E-Modal's own sheets write text
        ]
    )
    sheet.append([dt.date(2026, 1, 31), 0, -3, False])
    sheet["A5"] = "after an empty row"
    sheet["F5"] = "with a gap"
    return saved(workbook)


def test_typed_cells_become_the_texts_e_modal_shows() -> None:
    header, rows = parsing.read_sheet(io.BytesIO(typed_workbook()))
    assert header[:2] == ["Text", "2025"]
    rows = list(rows)
    assert rows[0] == {
        "Text": "spaces around",
        "2025": "42",
        "Padded": "1e+20",
        "Number": "1050.25",
        "When": "10/07/2025",
        "Flag": "True",
        "Vessel Code": "9456771",
    }
    assert (rows[1]["Text"], rows[1]["2025"], rows[1]["Padded"]) == ("01/31/2026", "0", "False")
    # Row 4 has nothing: skipped; a missing cell reads as empty text.
    assert [row["Text"] for row in rows] == ["spaces around", "01/31/2026", "after an empty row"]
    assert rows[2]["When"] == "with a gap" and rows[2]["Flag"] == ""


# -- bad files ------------------------------------------------------------------------------------


def _zip_of(**files: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


GOOD = typed_workbook()
BAD_FILES = {
    "an html page": (b"<html><body>Session expired</body></html>", "not an .xlsx file"),
    "empty": (b"", "not an .xlsx file"),
    "cut short": (GOOD[: len(GOOD) // 2], "not an .xlsx file"),
    "another zip": (_zip_of(**{"report.txt": "hello"}), "it cannot be read"),
}


@pytest.mark.parametrize("content,reason", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_gives_a_readable_reason(content: bytes, reason: str) -> None:
    with pytest.raises(parsing.SheetError, match=reason):
        sheet_rows(content)


def test_a_workbook_too_large_to_unpack_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sheet_rows(GOOD)
    monkeypatch.setattr(parsing, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(parsing.SheetError, match="too large to unpack"):
        sheet_rows(GOOD)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "kind,sheet",
    [("containers", "containers"), ("appointments", "appointments")],
)
def test_a_sheet_that_is_not_a_workbook_fails_the_query_with_the_reason(
    kind: str, sheet: str, alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    # The file server answers with an error page instead of the file, status 200.
    sim.fault("/files/{name}", count=1, mode="non_json", status=200)
    query, _ = start_query(account=alice, kind=kind)
    run_queued_tasks(task_queue, until=lambda: not Query.objects.get(pk=query.pk).is_live)
    query.refresh_from_db()
    assert query.status == Query.Status.FAILED
    assert query.error == (
        f"The {sheet} sheet cannot be read: it is not an .xlsx file (not a zip archive)."
    )
    assert len(sim.calls("/files/{name}")) == 1  # a bad file is not fetched again and again
    assert not query.containers.exists() and not query.appointments.exists()


# -- a containers row, typed --------------------------------------------------------------------


def test_a_containers_row_is_typed_column_by_column() -> None:
    raw = {
        "Container #": " msku-123 4567 ",
        "Trade Type": "IMPORT",
        "Status": "IN YARD",
        "Holds": " NO ",
        "Pregate Ticket#": "N/A *******",
        "Emodal Pregate Status": "**************",
        "Gate Status": "N/A",
        "Origin": "tti",
        "Destination": "N/A",
        "Current Loc": "TRP1",
        "Line": "MAERSK",
        "Vessel Name": "MAERSK ESSEN",
        "Vessel Code": "9456771",
        "Voyage": "N/A",
        "Size Type": "4310",
        "Fees": "info",
        "LFD/GTD": "09/26/2025 - 03/03/2026",
        "Tags": "x" * 300,
        "Unknown column": "ignored",
    }
    fields = parsing.container_fields(raw)
    assert fields == {
        "container_number": "MSKU1234567",
        "trade_type": "IMPORT",
        "status": "IN YARD",
        "holds": False,
        "pregate_ticket": "",
        "pregate_status": "**************",
        "gate_status": "",
        "origin": "TTI",
        "destination": "",
        "current_location": "TRP1",
        "line": "MAERSK",
        "vessel_name": "MAERSK ESSEN",
        "vessel_code": "9456771",
        "voyage": "",
        "size_type": "4310",
        "fees": "info",
        "last_free_day": dt.date(2025, 9, 26),
        "good_through": dt.date(2026, 3, 3),
        "tags": "x" * 200,
        "raw": raw,
    }
    unknown = parsing.container_fields(
        {column: "N/A" for column in parsing.CONTAINER_COLUMNS} | {"Container #": "MSCU7654321"}
    )
    # A container E-Modal knows nothing about: every value empty, none of them "N/A".
    assert unknown["container_number"] == "MSCU7654321"
    assert {k: v for k, v in unknown.items() if k not in ("container_number", "raw")} == {
        **{k: "" for k in parsing.CONTAINER_COLUMNS.values() if k != "container_number"},
        "holds": None,
        "last_free_day": None,
        "good_through": None,
    }
    odd = parsing.container_fields({"Holds": "maybe", "Fees": "N/A", "LFD/GTD": "N/A"})
    assert (odd["holds"], odd["fees"], odd["last_free_day"]) == (None, "", None)
    assert parsing.container_fields({"Holds": "N", "LFD/GTD": "31/12/2026"})["holds"] is False
    assert parsing.container_fields({"LFD/GTD": "31/12/2026"})["last_free_day"] is None
    single = parsing.container_fields({"LFD/GTD": "10/09/2025"})
    assert (single["last_free_day"], single["good_through"]) == (dt.date(2025, 10, 9), None)


# -- storing the rows ---------------------------------------------------------------------------


def _stored(query: Query) -> dict[str, dict[str, Any]]:
    return {
        row.pop("container_number"): row
        for row in ContainerRow.objects.filter(query=query).values(
            *(name for name in parsing.CONTAINER_COLUMNS.values()), "good_through", "raw"
        )
    }


@pytest.mark.django_db
def test_storing_a_sheet_twice_leaves_its_rows_once_with_their_types(alice: Account) -> None:
    served = simdata.containers_for("carol+c1200", SimConfig())
    served[0]["Status"] = "S" * 100  # longer than its column: cut to fit, kept whole in raw
    content = simdata.xlsx_bytes(simdata.COLUMNS, served, "Containers")
    rows = results.container_rows(content)
    assert len(rows) == 1200
    query = Query.objects.create(account=alice, kind="containers")
    other = Query.objects.create(account=alice, kind="containers")
    results.store_container_rows(other, dict(list(rows.items())[:3]), content)
    results.store_container_rows(query, rows, content)
    results.store_container_rows(query, rows, content)  # the step run again

    stored = _stored(query)
    assert len(stored) == ContainerRow.objects.filter(query=query).count() == 1200
    for number, fields in rows.items():
        expected = {k: v for k, v in fields.items() if k != "container_number"}
        if number == served[0]["Container #"]:
            expected["status"] = "S" * 60
        assert stored[number] == expected
    assert stored[served[0]["Container #"]]["raw"]["Status"] == "S" * 100
    assert {row["fees"] for row in stored.values()} == {"", "info"}
    assert any(isinstance(row["last_free_day"], dt.date) for row in stored.values())
    assert any(isinstance(row["good_through"], dt.date) for row in stored.values())
    assert {row["holds"] for row in stored.values()} == {True, False, None}
    assert query.files.get().size == len(content)

    fewer = dict(list(rows.items())[:10])
    results.store_container_rows(query, fewer, content)
    assert set(_stored(query)) == set(fewer)
    assert len(_stored(other)) == 3  # another query's rows are left alone


@pytest.mark.django_db
def test_text_longer_than_its_column_is_cut_to_fit_and_kept_whole_in_raw(alice: Account) -> None:
    query = Query.objects.create(account=alice, kind="appointments")
    raw = {"Appointment #": "A" * 80, "Status": "Confirmed - " + "x" * 60, "Trade Type": "IMPORT"}
    fields = parsing.appointment_fields(raw)
    results.insert_rows(AppointmentRow, [{"query": query.pk, "row_number": 1, **fields}])
    stored = AppointmentRow.objects.get(query=query)
    assert stored.appointment_number == "A" * 40
    assert stored.status == ("Confirmed - " + "x" * 60)[:40]
    assert stored.trade_type == "IMPORT"
    assert stored.appointment_date is None
    assert stored.raw == raw
