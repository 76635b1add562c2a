"""Read the rows of an .xlsx worksheet with the standard library, streaming.

openpyxl's read-only mode builds a cell object per cell and costs tens of microseconds a cell;
the upstream's containers sheet has 18 columns and up to tens of thousands of rows. Here the
worksheet XML is streamed with `iterparse` and each row turned into the values openpyxl gives
with `data_only=True` and `values_only=True` (the cached result of a formula, never the
formula): shared strings (`t="s"`), inline strings (`t="inlineStr"`, rich text joined), formula
strings (`t="str"`), booleans (`t="b"`), errors (`t="e"`, their text), ISO dates (`t="d"`), and
numbers — int or float as written, or a datetime/time/timedelta when the cell's style has a
date or duration format (the 1900 or 1904 calendar, as the workbook says). openpyxl's own
format tests and serial-date conversion are used for the last, so both agree by construction.

One difference on purpose: openpyxl's read-only mode trusts the sheet's `<dimension>` and drops
cells outside it (some writers declare `A1` whatever the size); this reader reads every cell.

Everything that can go wrong with a bad file raises `SheetError` with a readable reason.
Expat ≥ 2.4.1 (CPython bundles it) refuses entity-expansion bombs and `xml.etree` resolves no
external entities; a part's declared uncompressed size is capped against zip bombs.
"""

from __future__ import annotations

import posixpath
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any
from xml.etree import ElementTree

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
from openpyxl.utils.datetime import MAC_EPOCH, WINDOWS_EPOCH, from_excel, from_ISO8601

# A 10 000-row containers sheet is about 10 MB of XML.
MAX_PART_BYTES = 256 * 1024 * 1024

TRANSITIONAL_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONSHIPS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DIGITS = "0123456789"


class SheetError(ValueError):
    """The file is not a readable .xlsx workbook; the text says why, for users."""


# Failures of the zip, XML and value layers that a damaged or foreign file can cause.
_FILE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    IndexError,
    ValueError,
    OverflowError,
    ElementTree.ParseError,
    NotImplementedError,  # a zip compression method the standard library lacks
    RuntimeError,  # an encrypted zip member
)

Row = tuple[int, list[Any]]


def read_rows(stream: IO[bytes]) -> Iterator[Row]:
    """(row number, values from column A on) for each row of the workbook's active sheet
    (the one openpyxl's `workbook.active` names), in order. A missing cell is None, a row
    ends at its last cell, rows without cells are left out; a row numbered at or before the
    previous one is dropped, as openpyxl does."""
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SheetError("it is not an .xlsx file (not a zip archive)") from exc
    with archive:
        book = _Book(archive)
        yield from book.rows()


class _Book:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.parts = set(archive.namelist())
        workbook_path = self._office_document()
        with self._reading(workbook_path):
            root = ElementTree.fromstring(self._read(workbook_path))  # noqa: S314 - see above
        namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
        self.ns = f"{{{namespace}}}" if namespace else ""
        properties = root.find(f"{self.ns}workbookPr")
        date1904 = properties.get("date1904") if properties is not None else None
        # openpyxl's Bool: only these spellings mean false.
        mac = bool(date1904) and date1904 not in ("false", "f", "0")
        self.epoch = MAC_EPOCH if mac else WINDOWS_EPOCH
        with self._reading(workbook_path):
            self.active = _active_tab(root, self.ns)
            self.relations = self._relations(workbook_path)
            self.sheets = self._sheets(root)

    # -- parts ------------------------------------------------------------------------------

    @contextmanager
    def _reading(self, part: str) -> Iterator[None]:
        try:
            yield
        except SheetError:
            raise
        except KeyError as exc:
            raise SheetError(f"the workbook has no part {exc.args[0]}") from exc
        except ElementTree.ParseError as exc:
            raise SheetError(f"{part} is not well-formed XML ({exc})") from exc
        except IndexError as exc:
            raise SheetError(f"{part} refers to a shared string that does not exist") from exc
        except _FILE_ERRORS as exc:
            raise SheetError(f"{part} cannot be read ({exc})") from exc

    def _open(self, part: str) -> IO[bytes]:
        try:
            info = self.archive.getinfo(part)
        except KeyError:
            raise SheetError(f"the workbook has no part {part}") from None
        if info.file_size > MAX_PART_BYTES:
            raise SheetError(f"{part} is too large ({info.file_size} bytes uncompressed)")
        return self.archive.open(info)

    def _read(self, part: str) -> bytes:
        with self._open(part) as handle:
            return handle.read()

    def _office_document(self) -> str:
        if "_rels/.rels" in self.parts:
            with self._reading("_rels/.rels"):
                for kind, target in _relationships(self._read("_rels/.rels")):
                    if kind.endswith("/officeDocument"):
                        return _resolve("", target)
        return "xl/workbook.xml"

    def _relations(self, workbook_path: str) -> list[tuple[str, str, str]]:
        """(id, type, part) of the workbook's relationships."""
        folder, name = posixpath.split(workbook_path)
        rels_path = posixpath.join(folder, "_rels", f"{name}.rels")
        root = ElementTree.fromstring(self._read(rels_path))  # noqa: S314 - see module doc
        return [
            (rel.get("Id", ""), rel.get("Type", ""), _resolve(folder, rel.get("Target", "")))
            for rel in root.iter(f"{{{RELATIONSHIPS_NS}}}Relationship")
        ]

    def _related(self, suffix: str) -> str | None:
        for _, kind, part in self.relations:
            if kind.endswith(suffix) and part in self.parts:
                return part
        return None

    def _sheets(self, root: ElementTree.Element) -> list[tuple[str, str, str]]:
        """(name, type, part) of the sheets openpyxl keeps, in its order: those with a
        relationship id whose part exists."""
        by_id = {rel_id: (kind, part) for rel_id, kind, part in self.relations}
        sheets = []
        for sheet in root.iter(f"{self.ns}sheet"):
            rel_id = next((v for k, v in sheet.attrib.items() if k.endswith("}id")), None)
            if not rel_id:
                continue
            name = sheet.get("name", "")
            if rel_id not in by_id:
                raise SheetError(f"its sheet {name!r} has no part")
            kind, part = by_id[rel_id]
            if part in self.parts:
                sheets.append((name, kind, part))
        return sheets

    # -- shared strings and styles ----------------------------------------------------------

    def _shared_strings(self) -> list[str]:
        part = self._related("/sharedStrings")
        if part is None:
            return []
        strings = []
        tag = f"{self.ns}si"
        with self._reading(part), self._open(part) as source:
            for _, element in ElementTree.iterparse(source):  # noqa: S314 - see module doc
                if element.tag == tag:
                    # openpyxl drops the escape of "_" this way when it reads the table.
                    strings.append(_text_content(element).replace("x005F_", ""))
                    element.clear()
        return strings

    def _date_styles(self) -> tuple[set[int], set[int]]:
        """Indexes of the cell styles whose number format is a date, and a duration."""
        part = self._related("/styles")
        if part is None:
            return set(), set()
        with self._reading(part):
            root = ElementTree.fromstring(self._read(part))  # noqa: S314 - see module doc
            custom = {
                int(fmt.get("numFmtId", "")): fmt.get("formatCode")
                for fmt in root.iterfind(f"{self.ns}numFmts/{self.ns}numFmt")
            }
            dates, durations = set(), set()
            for index, xf in enumerate(root.iterfind(f"{self.ns}cellXfs/{self.ns}xf")):
                number = int(xf.get("numFmtId", "0"))
                fmt = custom[number] if number in custom else BUILTIN_FORMATS.get(number)
                if is_date_format(fmt):
                    dates.add(index)
                if is_timedelta_format(fmt):
                    durations.add(index)
        return dates, durations

    # -- the sheet --------------------------------------------------------------------------

    def rows(self) -> Iterator[Row]:
        if not 0 <= self.active < len(self.sheets):
            raise SheetError("the workbook has no sheet to read")
        name, kind, part = self.sheets[self.active]
        if not kind.endswith("/worksheet"):
            raise SheetError(f"its sheet {name!r} is not a worksheet")
        strings = self._shared_strings()
        dates, durations = self._date_styles()
        number = _number_reader(dates, durations, self.epoch)
        with self._reading(part), self._open(part) as source:
            yield from _sheet_rows(source, self.ns, strings, number)


def _sheet_rows(
    source: IO[bytes],
    ns: str,
    strings: list[str],
    number: Callable[[str, str | None], Any],
) -> Iterator[Row]:
    row_tag, cell_tag, value_tag, inline_tag, text_tag = (
        f"{ns}{name}" for name in ("row", "c", "v", "is", "t")
    )
    columns: dict[str, int] = {}
    counter = last = 0
    for _, element in ElementTree.iterparse(source):  # noqa: S314 - see module doc
        if element.tag != row_tag:
            continue
        counter = _row_number(element.get("r"), counter)
        values: list[Any] = []
        column = 0
        for cell in element:
            if cell.tag != cell_tag:
                continue
            ref = cell.get("r")
            if ref:
                letters = ref.rstrip(_DIGITS)
                column = columns.get(letters) or columns.setdefault(letters, _column(letters))
            else:
                column += 1
            kind = cell.get("t", "n")
            if kind == "inlineStr":
                node = cell.find(inline_tag)
                if node is None:
                    value = None
                elif len(node) == 1 and node[0].tag == text_tag:
                    value = node[0].text or ""
                else:
                    value = _text_content(node)
            else:
                value = cell.findtext(value_tag) or None
                if value is not None:
                    if kind == "s":
                        value = strings[int(value)]
                    elif kind == "n":
                        value = number(value, cell.get("s"))
                    elif kind == "b":
                        value = bool(int(value))
                    elif kind == "d":
                        value = from_ISO8601(value)
                    # "str" (a formula's text), "e" (an error such as #N/A): the text itself.
            size = len(values)
            if column == size + 1:
                values.append(value)
            elif column > size:
                values.extend([None] * (column - size - 1))
                values.append(value)
            else:
                values[column - 1] = value
        element.clear()
        if counter <= last:
            continue
        last = counter
        if values:
            yield counter, values


def _row_number(ref: str | None, previous: int) -> int:
    if not ref:
        return previous + 1
    try:
        return int(ref)
    except ValueError:
        value = float(ref)
        if not value.is_integer():
            raise ValueError(f"{ref} is not a valid row number") from None
        return int(value)


def _column(letters: str) -> int:
    """'A' → 1, 'ab' → 28."""
    letters = letters.upper()
    if not 1 <= len(letters) <= 3 or not letters.isascii() or not letters.isalpha():
        raise ValueError(f"{letters!r} is not a cell reference")
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index


def _number_reader(
    dates: set[int], durations: set[int], epoch: Any
) -> Callable[[str, str | None], Any]:
    def number(text: str, style: str | None) -> Any:
        try:
            value: Any = float(text) if "." in text or "E" in text or "e" in text else int(text)
        except ValueError:
            raise ValueError(f"a number cell holds {text[:40]!r}") from None
        index = int(style) if style else 0
        if index in dates:
            try:
                return from_excel(value, epoch, timedelta=index in durations)
            except (OverflowError, ValueError):
                return "#VALUE!"  # what openpyxl makes of a serial outside the calendar
        return value

    return number


def _text_content(node: ElementTree.Element) -> str:
    """A string item's text as openpyxl's `Text.content` has it: its plain <t>, then the <t>
    of each rich-text run (phonetic runs left out)."""
    plain = None
    runs = []
    for child in node:
        tag = child.tag.rpartition("}")[2]
        if tag == "t":
            plain = child.text
        elif tag == "r":
            run = None
            for part in child:
                if part.tag.rpartition("}")[2] == "t":
                    run = part.text
            if run is not None:
                runs.append(run)
    return "".join(([plain] if plain is not None else []) + runs)


def _active_tab(root: ElementTree.Element, ns: str) -> int:
    for view in root.iterfind(f"{ns}bookViews/{ns}workbookView"):
        if view.get("activeTab") is not None:
            return int(view.get("activeTab", "0"))
    return 0


def _relationships(content: bytes) -> list[tuple[str, str]]:
    root = ElementTree.fromstring(content)  # noqa: S314 - see module doc
    return [
        (rel.get("Type", ""), rel.get("Target", ""))
        for rel in root.iter(f"{{{RELATIONSHIPS_NS}}}Relationship")
    ]


def _resolve(folder: str, target: str) -> str:
    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(folder, target))
