"""Stream an .xlsx sheet's rows in batches with openpyxl's read-only mode (constant memory):
the header is the first non-empty row, every other row an event of text values
(:mod:`.cells`), empty rows skipped. A row with an error cell (``#N/A``, ``#DIV/0!``…) or a
value in a column without a header is quarantined, as a CSV row of the wrong width is.

The batches, the errors file, the summary and the moves to ``done/``/``failed/`` are the csv
trigger's own (``adapters/triggers/csv/reader.py``): the guarantees are the same.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from nextstep.adapters.triggers.csv.detect import FileFacts, field_names
from nextstep.adapters.triggers.csv.reader import BadRow, Batch, CsvUnreadable, repeated_columns
from nextstep.adapters.triggers.xlsx.cells import cell_text
from nextstep.engine.model import Event
from nextstep.engine.plugins import FileRow

_CHUNK = 1024 * 1024
_ERROR_VALUES = frozenset(
    {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"}
)


@dataclass(frozen=True, slots=True)
class XlsxOptions:
    """How to read the workbooks of one source: which sheet (None: the first), the header map
    (normalised header -> field), rows per batch."""

    sheet: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    batch: int = 1000


def file_facts(path: Path) -> FileFacts:
    """The workbook's content hash and size (its progress key), in one streaming pass."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileFacts(digest.hexdigest(), size, "xlsx")


class XlsxFile:
    """An open workbook positioned on its sheet's first data row (what :class:`CsvFile` is
    for a CSV file)."""

    delimiter = ","  # of its errors file

    def __init__(self, path: Path, facts: FileFacts, options: XlsxOptions) -> None:
        self.path = path
        self.facts = facts
        self._options = options
        try:
            self._book = load_workbook(path, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise CsvUnreadable(
                f"not a readable .xlsx workbook: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            sheet = self._sheet(options.sheet)
            self.sheet_name = sheet.title
            self._rows = sheet.iter_rows()
            self._line = 0
            self._last_line = sheet.max_row if isinstance(sheet.max_row, int) else 0
            self.header = self._read_header()
        except BaseException:
            self._book.close()
            raise
        self.fields = field_names(self.header, options.aliases)
        self.notes = repeated_columns(self.header, self.fields, options.aliases)

    def _sheet(self, name: str | None) -> Any:
        names = self._book.sheetnames
        if name is None:
            if not names:
                raise CsvUnreadable("the workbook has no sheet")
            return self._book.worksheets[0]
        if name not in names:
            shown = ", ".join(repr(n) for n in names)
            raise CsvUnreadable(f"the workbook has no sheet {name!r} (its sheets: {shown})")
        return self._book[name]

    def _read_header(self) -> list[str]:
        for cells in self._rows:
            self._line += 1
            values = [cell_text(c.value) for c in cells]
            while values and not values[-1]:
                values.pop()
            if values:
                return values
        raise CsvUnreadable(f"the sheet {self.sheet_name!r} has no header row")

    def _bytes_read(self, line: int) -> int:
        """How far the sheet is read, in the file's bytes (estimated from the sheet's
        dimension: the workbook is compressed XML), for the progress bar."""
        if self._last_line <= 0:
            return 0
        return min(self.facts.size, self.facts.size * line // self._last_line)

    def close(self) -> None:
        """Close the workbook."""
        self._book.close()

    def __enter__(self) -> XlsxFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self, skip: int = 0) -> Iterator[Batch]:
        """Rows after row ``skip`` in batches of ``options.batch``; raises CsvUnreadable when
        the rest of the sheet cannot be read."""
        try:
            yield from self._batches(skip)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, SyntaxError) as exc:
            # openpyxl's XML parser raises SyntaxError subclasses (ParseError) on a broken sheet
            raise CsvUnreadable(f"row {self._line}: {type(exc).__name__}: {exc}") from exc

    def _batches(self, skip: int) -> Iterator[Batch]:
        fields, width, size = self.fields, len(self.fields), self._options.batch
        rows: list[tuple[int, int, dict[str, str]]] = []
        bad: list[BadRow] = []
        number = 0
        for cells in self._rows:
            self._line += 1
            line = self._line
            values, problem = _row_values(cells, line)
            while values and not values[-1]:
                values.pop()
            if not values and not problem:
                continue
            number += 1
            if number <= skip:
                continue
            if not problem and len(values) > width:
                letter = get_column_letter(width + 1)
                problem = f"a value in column {letter}, which has no header"
            if problem:
                bad.append(BadRow(number, line, problem, values))
            else:
                values += [""] * (width - len(values))
                rows.append((number, line, dict(zip(fields, values, strict=True))))
            if len(rows) + len(bad) >= size:
                yield Batch(rows, bad, number, self._bytes_read(line))
                rows, bad = [], []
        if rows or bad:
            yield Batch(rows, bad, number, self.facts.size)


def _row_values(cells: Sequence[Any], line: int) -> tuple[list[str], str]:
    """A row's text values and, if a cell holds an error value, why the row is refused."""
    values: list[str] = []
    problem = ""
    for cell in cells:
        value = cell.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            values.append(cell_text(value, cell.number_format))
            continue
        if isinstance(value, str) and value in _ERROR_VALUES and cell.data_type == "e":
            problem = problem or f"cell {get_column_letter(len(values) + 1)}{line} is {value}"
        values.append(cell_text(value))
    return values, problem


def dry_rows(options: XlsxOptions, path: Path, source: str) -> Iterator[FileRow]:
    """Every row of ``path`` read as the trigger reads it, in order, writing nothing."""
    try:
        sheet = XlsxFile(path, file_facts(path), options)
    except CsvUnreadable as exc:
        yield FileRow(0, 0, problem=str(exc))
        return
    with sheet:
        for note in sheet.notes:
            yield FileRow(0, 0, note=note)
        trigger = {"kind": "xlsx", "source": source, "file": path.name, "sheet": options.sheet}
        try:
            for batch in sheet.batches():
                found = [
                    FileRow(n, line, Event(data, {**trigger, "row": n, "line": line}))
                    for n, line, data in batch.rows
                ]
                found += [FileRow(b.row, b.line, problem=b.reason) for b in batch.bad]
                yield from sorted(found, key=lambda r: r.row)
        except CsvUnreadable as exc:
            yield FileRow(0, 0, problem=f"the rest of the sheet is unreadable: {exc}")
