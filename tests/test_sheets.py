"""The upstream's sheets: the streaming .xlsx reader against openpyxl (the reader the portal
used before), bad files, typing a containers row, and storing the rows."""

from __future__ import annotations

import datetime as dt
import io
import warnings
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.styles import Font
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from emodal_sim import SimConfig
from emodal_sim import data as simdata
from queries_app import parsing, steps, xlsx
from queries_app.models import AppointmentRow, ContainerRow, Query
from queries_app.services import start_query
from sessions_app.models import Account

from .sim import SimControl
from .taskqueue import TaskQueue, run_queued_tasks

# -- the reference: openpyxl, read as the portal read sheets before -------------------------------


def _trim(values: Any) -> list[Any]:
    values = list(values)
    while values and values[-1] is None:
        values.pop()
    return values


def openpyxl_values(content: bytes, *, trust_dimension: bool = True) -> dict[int, list[Any]]:
    """{row number: values} of the active sheet as openpyxl's read-only mode gives them,
    rows without a value left out."""
    with warnings.catch_warnings():
        # e.g. a date serial outside the calendar, a hand-made workbook without default style
        warnings.simplefilter("ignore")
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            sheet = workbook.active
            if not trust_dimension:
                sheet.reset_dimensions()
            rows = enumerate(sheet.iter_rows(values_only=True), start=1)
            return {number: _trim(values) for number, values in rows if _trim(values)}
        finally:
            workbook.close()


def reader_values(content: bytes) -> dict[int, list[Any]]:
    rows = xlsx.read_rows(io.BytesIO(content))
    return {number: _trim(values) for number, values in rows if _trim(values)}


def openpyxl_sheet_rows(content: bytes) -> list[dict[str, str]]:
    """What parsing.sheet_rows returned when it read with openpyxl."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            rows = workbook.active.iter_rows(values_only=True)
            header = [str(cell or "").strip() for cell in next(rows, ())]
            return [
                {name: parsing._text(v) for name, v in zip(header, values, strict=False) if name}
                for values in rows
                if any(v not in (None, "") for v in values)
            ]
        finally:
            workbook.close()


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
def test_the_simulators_containers_sheet_reads_as_served_and_as_openpyxl_reads_it(
    username: str,
) -> None:
    config = SimConfig()
    served = simdata.containers_for(username, config)
    content = simdata.xlsx_bytes(simdata.COLUMNS, served, "Containers")
    assert sheet_rows(content) == served
    assert reader_values(content) == openpyxl_values(content)


def test_the_simulators_appointments_sheet_reads_as_served_and_as_openpyxl_reads_it() -> None:
    config = SimConfig()
    containers = simdata.containers_for("alice-emodal", config)
    served = simdata.appointments_for("alice-emodal", containers, config)
    assert served
    content = simdata.xlsx_bytes(simdata.APPOINTMENT_COLUMNS, served, "Appointments")
    assert sheet_rows(content) == served
    assert reader_values(content) == openpyxl_values(content)


# -- workbooks with every kind of cell ----------------------------------------------------------


def tricky_workbook(*, mac_epoch: bool = False) -> bytes:
    workbook = Workbook()
    if mac_epoch:
        workbook.epoch = CALENDAR_MAC_1904
    cover = workbook.active
    cover.title = "Cover"
    cover.append(["This sheet is not the one to read"])
    sheet = workbook.create_sheet("Data")
    workbook.active = 1
    sheet.append(["Text", 2025, None, "  Padded  ", "Number", "When", "Flag", "Rich", "Formula"])
    sheet.append(
        [
            "  spaces kept by the reader  ",
            42,
            1.5,
            1e20,
            Decimal("1050.25"),
            naive(2025, 10, 7, 9, 30),
            True,
            CellRichText(["plain ", TextBlock(InlineFont(b=True), "bold"), " end"]),
            "=1+1",  # no cached value: None with data_only
        ]
    )
    sheet.append([dt.date(2026, 1, 31), dt.time(9, 45), dt.timedelta(hours=30, minutes=5), False])
    sheet["J3"] = "#N/A"
    sheet["J3"].data_type = "e"
    sheet["A5"] = "after an empty row"
    sheet["F5"] = "with a gap"
    sheet["B6"].font = Font(bold=True)  # a styled cell with no value: a blank row
    sheet["C7"] = 0
    sheet["D7"] = ""
    sheet["A8"] = -3
    sheet["B8"] = 0.1
    return saved(workbook)


@pytest.mark.parametrize("mac_epoch", [False, True], ids=["1900 calendar", "1904 calendar"])
def test_every_kind_of_cell_reads_as_openpyxl_reads_it(mac_epoch: bool) -> None:
    content = tricky_workbook(mac_epoch=mac_epoch)
    values = reader_values(content)
    assert values == openpyxl_values(content)
    # What the comparison covers (so that it cannot pass on two empty results).
    assert values[2][5] == naive(2025, 10, 7, 9, 30)
    assert values[2][7] == "plain bold end"
    assert values[3][:4] == [
        naive(2026, 1, 31),
        dt.time(9, 45),
        dt.timedelta(hours=30, minutes=5),
        False,
    ]
    assert values[5] == ["after an empty row", None, None, None, None, "with a gap"]
    assert 4 not in values and 6 not in values
    assert sheet_rows(content) == openpyxl_sheet_rows(content)


def test_typed_cells_become_the_texts_they_were_before() -> None:
    rows = sheet_rows(tricky_workbook())
    assert rows[0] == {
        "Text": "spaces kept by the reader",
        "2025": "42",
        "Padded": "1e+20",
        "Number": "1050.25",
        "When": "10/07/2025",
        "Flag": "True",
        "Rich": "plain bold end",
        "Formula": "",
    }
    assert rows[1]["Text"] == "01/31/2026"
    assert rows[1]["2025"] == "09:45:00"
    assert rows[1]["Padded"] == "False"
    assert rows[1]["Flag"] == ""  # no cell
    # Row 4 has nothing, row 6 only a styled empty cell: both skipped; row 7's 0 counts.
    texts = [row["Text"] for row in rows]
    assert texts == ["spaces kept by the reader", "01/31/2026", "after an empty row", "", "-3"]


MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
STRICT_NS = "http://purl.oclc.org/ooxml/spreadsheetml/main"
STRICT_RELS_NS = "http://purl.oclc.org/ooxml/officeDocument/relationships"
STYLES = """<numFmts count="2"><numFmt numFmtId="164" formatCode="mm/dd/yyyy"/>
<numFmt numFmtId="165" formatCode="[h]:mm"/></numFmts>
<cellXfs count="5"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="14"/>
<xf numFmtId="165"/><xf numFmtId="2"/></cellXfs>"""


def package(
    rows: str,
    *,
    strings: Sequence[str] = (),
    styles: str = STYLES,
    before_data: str = "",
    ns: str = MAIN_NS,
    rels_ns: str = RELS_NS,
) -> bytes:
    """A workbook written by hand, as other programs than openpyxl write them."""
    part = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    rel = rels_ns
    files = {
        "[Content_Types].xml": f"""<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="{part}.sheet.main+xml"/>
<Override PartName="/xl/worksheets/data.xml" ContentType="{part}.worksheet+xml"/>
<Override PartName="/xl/strings.xml" ContentType="{part}.sharedStrings+xml"/>
<Override PartName="/xl/styles.xml" ContentType="{part}.styles+xml"/></Types>""",
        "_rels/.rels": f"""<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>""",
        "xl/workbook.xml": f"""<workbook xmlns="{ns}" xmlns:r="{rel}">
<sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>""",
        "xl/_rels/workbook.xml.rels": f"""<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/data.xml"/>
<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="/xl/strings.xml"/>
<Relationship Id="rId3" Type="{rel}/styles" Target="styles.xml"/></Relationships>""",
        "xl/strings.xml": f"""<sst xmlns="{ns}">{"".join(strings)}</sst>""",
        "xl/styles.xml": f"""<styleSheet xmlns="{ns}">{styles}</styleSheet>""",
        "xl/worksheets/data.xml": f"""<worksheet xmlns="{ns}">{before_data}
<sheetData>{rows}</sheetData></worksheet>""",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


HAND_STRINGS = [
    "<si><t>Container #</t></si>",
    "<si><t>Status</t></si>",
    '<si><t xml:space="preserve">  MSKU1234567 </t></si>',
    "<si><r><rPr><b/></rPr><t>Avail</t></r><r><t>able</t></r>"
    "<rPh sb='0' eb='1'><t>phonetic</t></rPh></si>",
    "<si><t>a_x005F_x000D_b</t></si>",
    "<si><t/></si>",
    "<si><t>Fees</t></si>",
    "<si><t>Due</t></si>",
]
HAND_ROWS = """
<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c t="s"><v>6</v></c>
  <c t="s"><v>7</v></c><c r="E1" t="inlineStr"><is><t>Kind</t></is></c></row>
<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c><c r="C2"><v>95.5</v></c>
  <c r="D2" s="1"><v>45937</v></c><c r="E2" t="str"><v>formula text</v></c></row>
<row r="4"><c r="A4" t="s"><v>4</v></c><c r="B4" t="s"><v>5</v></c><c r="C4" s="4"><v>7</v></c>
  <c r="D4" s="2"><v>45937.5</v></c><c r="E4" t="d"><v>2025-10-07T08:15:00</v></c></row>
<row><c r="A5" t="b"><v>1</v></c><c r="D5" s="3"><v>1.25</v></c>
  <c r="E5" t="e"><v>#DIV/0!</v></c></row>
<row r="3"><c r="A3" t="s"><v>0</v></c></row>
<row r="6"><c r="B6"/><c r="C6" t="inlineStr"/><c r="D6" t="s"><v></v></c>
  <c r="E6" t="inlineStr"><is><t/></is></c></row>
<row r="7"><c r="c7"><v>1E3</v></c><c r="D7" s="1"><v>99999999</v></c>
  <c r="aa7" t="inlineStr"><is><r><t>run</t></r><t>plain</t></is></c></row>
"""


def test_shared_strings_gaps_and_odd_rows_read_as_openpyxl_reads_them() -> None:
    content = package(HAND_ROWS, strings=HAND_STRINGS)
    values = reader_values(content)
    assert values == openpyxl_values(content)
    assert values[2][:4] == ["  MSKU1234567 ", "Available", 95.5, naive(2025, 10, 7)]
    assert values[4][0] == "a_x000D_b"
    assert values[5] == [True, None, None, dt.timedelta(hours=30), "#DIV/0!"]
    assert 3 not in values  # numbered before the row above it: dropped, as openpyxl does
    assert values[6] == [None, None, None, None, ""]  # blank to sheet_rows, though
    assert values[7][2] == 1000.0 and values[7][26] == "plainrun"
    assert values[7][3] == "#VALUE!"  # a date serial past year 9999
    assert sheet_rows(content) == openpyxl_sheet_rows(content)
    assert sheet_rows(content)[0] == {
        "Container #": "MSKU1234567",
        "Status": "Available",
        "Fees": "95.5",
        "Due": "10/07/2025",
        "Kind": "formula text",
    }


def test_the_strict_xml_dialect_reads_like_the_usual_one() -> None:
    usual = package(HAND_ROWS, strings=HAND_STRINGS)
    strict = package(HAND_ROWS, strings=HAND_STRINGS, ns=STRICT_NS, rels_ns=STRICT_RELS_NS)
    assert reader_values(strict) == reader_values(usual)


def test_cells_outside_a_wrong_dimension_are_read_too() -> None:
    # Some writers declare A1 whatever the size; openpyxl's read-only mode then drops the rest.
    content = package(HAND_ROWS, strings=HAND_STRINGS, before_data='<dimension ref="A1"/>')
    assert openpyxl_values(content) == {1: ["Container #"]}
    assert reader_values(content) == openpyxl_values(content, trust_dimension=False)
    assert len(reader_values(content)) == 6


# -- bad files ------------------------------------------------------------------------------------


def _replaced(content: bytes, part: str, text: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(content))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            body = text.encode() if info.filename == part else source.read(info)
            archive.writestr(info.filename, body)
    return buffer.getvalue()


def _damaged_member(content: bytes) -> bytes:
    """The sheet's compressed bytes overwritten in the middle (its CRC no longer holds)."""
    archive = zipfile.ZipFile(io.BytesIO(content))
    info = archive.getinfo("xl/worksheets/data.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    middle = start + info.compress_size // 2
    return content[:middle] + b"\x00" * 8 + content[middle + 8 :]


def _zip_of(**files: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


GOOD = package(HAND_ROWS * 30, strings=HAND_STRINGS)
BAD_FILES = {
    "an html page": (b"<html><body>Session expired</body></html>", "not an .xlsx file"),
    "empty": (b"", "not an .xlsx file"),
    "cut short": (GOOD[: len(GOOD) // 2], "not an .xlsx file"),
    "another zip": (_zip_of(**{"report.txt": "hello"}), "no part xl/workbook.xml"),
    "damaged data": (
        _damaged_member(GOOD),
        "xl/worksheets/data.xml (cannot be read|is not well-formed XML)",
    ),
    "bad xml": (
        _replaced(GOOD, "xl/worksheets/data.xml", "<worksheet><sheetData><row>"),
        "xl/worksheets/data.xml is not well-formed XML",
    ),
    "missing shared string": (
        package('<row r="2"><c r="A2" t="s"><v>40</v></c></row>', strings=HAND_STRINGS),
        "refers to a shared string that does not exist",
    ),
    "not a number": (
        package('<row r="2"><c r="A2"><v>twelve</v></c></row>'),
        r"xl/worksheets/data.xml cannot be read \(a number cell holds 'twelve'\)",
    ),
    "no sheet": (
        _replaced(GOOD, "xl/workbook.xml", f'<workbook xmlns="{MAIN_NS}"><sheets/></workbook>'),
        "no sheet to read",
    ),
}


@pytest.mark.parametrize("content,reason", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_gives_a_readable_reason(content: bytes, reason: str) -> None:
    with pytest.raises(xlsx.SheetError, match=reason):
        sheet_rows(content)


def test_a_part_too_large_to_unpack_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sheet_rows(GOOD)
    monkeypatch.setattr(xlsx, "MAX_PART_BYTES", 1000)
    with pytest.raises(xlsx.SheetError, match="xl/worksheets/data.xml is too large"):
        sheet_rows(GOOD)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "kind,sheet",
    [(Query.Kind.CONTAINERS, "containers"), (Query.Kind.APPOINTMENTS, "appointments")],
)
def test_a_sheet_that_is_not_a_workbook_fails_the_query_with_the_reason(
    kind: str, sheet: str, alice: Account, sim: SimControl, task_queue: TaskQueue
) -> None:
    # The file server answers with an error page instead of the file, status 200.
    sim.fault("/files/{name}", count=1, mode="non_json", status=200)
    query = start_query(account=alice, kind=kind)
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
    rows = steps.container_rows(content)
    assert len(rows) == 1200
    query = Query.objects.create(account=alice, kind=Query.Kind.CONTAINERS)
    other = Query.objects.create(account=alice, kind=Query.Kind.CONTAINERS)
    steps.store_container_rows(other, dict(list(rows.items())[:3]), content)
    steps.store_container_rows(query, rows, content)
    steps.store_container_rows(query, rows, content)  # the step run again

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
    steps.store_container_rows(query, fewer, content)
    assert set(_stored(query)) == set(fewer)
    assert len(_stored(other)) == 3  # another query's rows are left alone


@pytest.mark.django_db
def test_text_longer_than_its_column_is_cut_to_fit_and_kept_whole_in_raw(alice: Account) -> None:
    query = Query.objects.create(account=alice, kind=Query.Kind.APPOINTMENTS)
    raw = {"Appointment #": "A" * 80, "Status": "Confirmed - " + "x" * 60, "Trade Type": "IMPORT"}
    fields = parsing.appointment_fields(raw)
    steps.insert_rows(AppointmentRow, [{"query": query.pk, "row_number": 1, **fields}])
    stored = AppointmentRow.objects.get(query=query)
    assert stored.appointment_number == "A" * 40
    assert stored.status == ("Confirmed - " + "x" * 60)[:40]
    assert stored.trade_type == "IMPORT"
    assert stored.appointment_date is None
    assert stored.raw == raw
