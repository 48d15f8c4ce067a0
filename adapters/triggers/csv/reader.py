"""Stream a CSV file's rows in batches (constant memory), quarantine the unusable ones, count
what became of the rest, and file the finished file away in ``done/`` or ``failed/``.

A row is usable when it has as many fields as the header (extra empty trailing fields, as
spreadsheets write them, are dropped). Unusable rows, and rows a rule could not render, are
appended to ``<file>.errors.csv`` with their row number, line and reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import shutil
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nextstep.adapters.triggers.csv.detect import (
    SAMPLE_BYTES,
    FileFacts,
    detect_delimiter,
    field_names,
    inspect_file,
    normalise_header,
)
from nextstep.engine.intake.idruns import IdRuns
from nextstep.engine.model import Event
from nextstep.engine.plugins import EventResult, FileRow, RuleResult

ERRORS_SUFFIX = ".errors.csv"
DEFAULT_MAX_FIELD = 1024 * 1024  # characters in one field (the csv module's own is 131,072)

_LIMIT_LOCK = threading.Lock()
# A rule's template naming a field the file has no column for fails on every row alike.
_UNDEFINED_FIELD = re.compile(r"'event\.(\w+)' is undefined")


def allow_fields_up_to(characters: int) -> None:
    """Raise the csv module's field limit (one for the process) to at least ``characters``;
    each file still holds its own trigger's limit (:meth:`CsvFile.batches`)."""
    with _LIMIT_LOCK:
        if csv.field_size_limit() < characters:
            csv.field_size_limit(characters)


class CsvUnreadable(Exception):
    """The file cannot be read as CSV at all (no header, wrong encoding, broken quoting)."""


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How to read the files of one CSV source; ``None`` means detect."""

    delimiter: str | None = None
    encoding: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # normalised header -> field
    batch: int = 1000
    max_field: int = DEFAULT_MAX_FIELD  # characters; a longer field's row is quarantined


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that goes to the errors file: where it was, why, and its fields as read."""

    row: int
    line: int
    reason: str
    fields: Sequence[str]


@dataclass(slots=True)
class Batch:
    """Consecutive rows of a file: the usable ones, the bad ones, and how far the file was read."""

    rows: list[tuple[int, int, dict[str, str]]]  # row number, line, data
    bad: list[BadRow]
    last_row: int
    bytes_read: int


def errors_path(path: Path) -> Path:
    """``inbox/a.csv`` → ``inbox/a.csv.errors.csv``."""
    return path.with_name(path.name + ERRORS_SUFFIX)


class CsvFile:
    """An open CSV file positioned on its first data row."""

    def __init__(self, path: Path, facts: FileFacts, options: CsvOptions) -> None:
        self.path = path
        self.facts = facts
        self._options = options
        self._binary = path.open("rb")
        try:
            self.delimiter = options.delimiter or self._sniff()
            self._text = io.TextIOWrapper(
                self._binary, encoding=facts.encoding, errors=facts.errors, newline=""
            )
            self._reader = csv.reader(self._text, delimiter=self.delimiter)
            self.header = self._read_header()
        except (csv.Error, UnicodeError, LookupError) as exc:
            self._binary.close()
            raise CsvUnreadable(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._binary.close()
            raise
        self.fields = field_names(self.header, options.aliases)
        self.notes = repeated_columns(self.header, self.fields, options.aliases)
        allow_fields_up_to(options.max_field)

    def _sniff(self) -> str:
        head = self._binary.read(SAMPLE_BYTES)
        self._binary.seek(0)
        decoder = codecs.getincrementaldecoder(self.facts.encoding)(errors=self.facts.errors)
        complete = len(head) >= self.facts.size
        return detect_delimiter(decoder.decode(head, final=complete), complete)

    def _read_header(self) -> list[str]:
        for row in self._reader:
            if any(cell.strip() for cell in row):
                return row
        raise CsvUnreadable("the file has no header row")

    def close(self) -> None:
        """Close the file."""
        self._binary.close()

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self, skip: int = 0) -> Iterator[Batch]:
        """Rows after row ``skip`` in batches of ``options.batch``; raises CsvUnreadable when
        the rest of the file cannot be parsed. A row with a field over ``max_field``
        characters is quarantined and the rows after it are read."""
        state = _Position(skip)
        while True:
            try:
                yield from self._batches(state)
                return
            except csv.Error as exc:
                if "field larger than field limit" not in str(exc):
                    raise CsvUnreadable(
                        f"line {self._reader.line_num}: {type(exc).__name__}: {exc}"
                    ) from exc
                state.oversized(self._reader.line_num + 1, self._options.max_field)
            except UnicodeError as exc:
                raise CsvUnreadable(
                    f"line {self._reader.line_num}: {type(exc).__name__}: {exc}"
                ) from exc

    def _batches(self, state: _Position) -> Iterator[Batch]:
        fields, width, size = self.fields, len(self.fields), self._options.batch
        reader, strip, skip = self._reader, str.strip, state.skip
        # The csv module's limit is the process's largest; a smaller one is checked here.
        limit = self._options.max_field
        exact = limit < csv.field_size_limit()
        rows, bad = state.rows, state.bad
        line = state.line or reader.line_num + 1
        for raw in reader:
            start, line = line, reader.line_num + 1
            state.line = line
            if not raw or (len(raw) == 1 and not raw[0].strip()):
                continue
            state.number += 1
            number = state.number
            if number <= skip:
                continue
            if exact and sum(map(len, raw)) > limit and max(map(len, raw)) > limit:
                bad.append(BadRow(number, start, _oversized(raw, limit), []))
            elif len(raw) == width:  # the usual row: no list of stripped values needed
                rows.append((number, start, dict(zip(fields, map(strip, raw), strict=True))))
            else:
                values = list(map(strip, raw))
                if len(values) > width and not any(values[width:]):
                    del values[width:]
                if len(values) == width:
                    rows.append((number, start, dict(zip(fields, values, strict=True))))
                else:
                    bad.append(BadRow(number, start, self._width_error(values), raw))
            if len(rows) + len(bad) >= size:
                yield Batch(rows, bad, number, self._binary.raw.tell())
                rows, bad = state.rows, state.bad = [], []
        if rows or bad:
            yield Batch(rows, bad, state.number, self.facts.size)
            state.rows, state.bad = [], []

    def _width_error(self, values: Sequence[str]) -> str:
        width = len(self.fields)
        if len(values) < width:
            missing = ", ".join(self.fields[len(values) :])
            return f"missing column(s) {missing}: {len(values)} fields, the header has {width}"
        return f"{len(values)} fields, the header has only {width}"


@dataclass(slots=True)
class _Position:
    """Where :meth:`CsvFile.batches` is: rows counted, the current line, the batch so far."""

    skip: int
    number: int = 0
    line: int = 0
    rows: list[tuple[int, int, dict[str, str]]] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    def oversized(self, next_line: int, limit: int) -> None:
        """The record that ended at ``next_line`` had a field over the csv module's limit."""
        self.number += 1
        if self.number > self.skip:
            reason = f"a field is over {limit:,} characters (the trigger's max_field_size)"
            self.bad.append(BadRow(self.number, self.line or 1, reason, []))
        self.line = next_line


def _oversized(raw: Sequence[str], limit: int) -> str:
    index = max(range(len(raw)), key=lambda i: len(raw[i]))
    return (
        f"field {index + 1} is {len(raw[index]):,} characters, over {limit:,} "
        "(the trigger's max_field_size)"
    )


def repeated_columns(
    header: Sequence[str], fields: Sequence[str], aliases: Mapping[str, str]
) -> list[str]:
    """A note for each column whose name an earlier column already took (the later one gets
    ``_2``, ``_3``…: the event's field keeps the first column's value)."""
    notes: list[str] = []
    first: dict[str, str] = {}
    for cell, name in zip(header, fields, strict=True):
        key = normalise_header(cell)
        wanted = aliases.get(key) or key
        if wanted and wanted != name and wanted in first:
            notes.append(
                f"columns {first[wanted]!r} and {cell!r} are both event.{wanted}: it keeps "
                f"the first; the other is event.{name}"
            )
        first.setdefault(name, cell)
    return notes


class ErrorSink:
    """Appends unusable rows to an errors CSV (created on the first bad row, appended to when a
    file is resumed after a crash)."""

    def __init__(self, path: Path, header: Sequence[str], delimiter: str) -> None:
        self.path = path
        self._header = list(header)
        self._delimiter = delimiter
        self._stream: IO[str] | None = None
        self._writer: Any = None
        self.count = 0

    def write(self, rows: Iterable[BadRow]) -> None:
        """Append ``rows`` and flush them to disk."""
        for bad in rows:
            if self._writer is None:
                self._open()
            self._writer.writerow([bad.row, bad.line, bad.reason, *bad.fields])
            self.count += 1
        if self._stream is not None:
            self._stream.flush()

    def _open(self) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._stream = self.path.open("a", encoding="utf-8-sig", newline="")
        self._writer = csv.writer(self._stream, delimiter=self._delimiter)
        if new:
            self._writer.writerow(["row", "line", "reason", *self._header])

    def close(self) -> None:
        """Close the errors file if one was written."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
            self._writer = None


@dataclass(slots=True)
class FileSummary:
    """What ingesting one file did; ``queued``/``skipped``/``duplicates`` count rule results."""

    path: str
    rows: int = 0
    queued: int = 0
    skipped: int = 0
    duplicates: int = 0
    errors: int = 0
    resumed_after: int = 0
    already_done: bool = False
    failed: str = ""
    errors_file: str | None = None
    notification_ids: IdRuns = field(default_factory=IdRuns)
    notes: list[str] = field(default_factory=list)
    # (rule, column) -> rows refused because the rule needs a column the file does not have
    missing: dict[tuple[str, str], int] = field(default_factory=dict)


def failed_rows(
    batch: Batch,
    results: Sequence[EventResult],
    columns: Collection[str] = (),
    missing: dict[tuple[str, str], int] | None = None,
) -> list[BadRow]:
    """Rows a rule could not use (render error, bad phone…) with every rule's reason. An
    error that is a column the file lacks (``'event.x' is undefined`` with no column ``x``)
    is counted in ``missing`` instead, once per rule and column: it is the file's problem,
    not the row's."""
    bad: list[BadRow] = []
    for (number, line, data), result in zip(batch.rows, results, strict=True):
        errors = result.errors
        if not errors:
            continue
        if missing is not None:
            errors = [e for e in errors if not _missing_column(e, columns, missing)]
            if not errors:
                continue
        reason = "; ".join(f"rule {e.rule_id}: {e.reason}" for e in errors)
        bad.append(BadRow(number, line, reason, list(data.values())))
    return bad


def _missing_column(
    error: RuleResult, columns: Collection[str], missing: dict[tuple[str, str], int]
) -> bool:
    found = _UNDEFINED_FIELD.search(error.reason)
    if found is None or found.group(1) in columns:
        return False
    key = (error.rule_id, found.group(1))
    missing[key] = missing.get(key, 0) + 1
    return True


def missing_columns_problem(missing: Mapping[tuple[str, str], int], columns: Sequence[str]) -> str:
    """One sentence for every column rules needed and the file lacks."""
    needs = "; ".join(
        f"rule {rule} needs column {column!r} (event.{column}), which the file does not have "
        f"({rows:,} rows refused)"
        for (rule, column), rows in sorted(missing.items())
    )
    return f"{needs}; the file's columns are: {', '.join(columns)}"


def tally(summary: FileSummary, batch: Batch, results: Sequence[EventResult]) -> None:
    """Count a committed batch into ``summary``."""
    summary.rows += len(batch.rows) + len(batch.bad)
    summary.errors += len(batch.bad)
    counts = {"queued": 0, "skipped": 0, "duplicate": 0}
    failed = 0
    ids = summary.notification_ids
    for result in results:
        erred = False
        for r in result.results:
            status = r.status
            if status == "error":
                erred = True
                continue
            counts[status] += 1
            if status == "queued" and r.notification_id is not None:
                ids.append(r.notification_id)
        failed += erred
    summary.errors += failed
    summary.queued += counts["queued"]
    summary.skipped += counts["skipped"]
    summary.duplicates += counts["duplicate"]


def quarantine_file(path: Path, reason: str) -> None:
    """Write why a whole file could not be read into its errors file."""
    sink = ErrorSink(errors_path(path), [], ",")
    try:
        sink.write([BadRow(0, 0, f"file unreadable: {reason}", [])])
    finally:
        sink.close()


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/stem.N.suffix`` when a file of that name is there."""
    target = folder / name
    stem, suffix = os.path.splitext(name)
    n = 0
    while target.exists() or Path(str(target) + ERRORS_SUFFIX).exists():
        n += 1
        target = folder / f"{stem}.{n}{suffix}"
    return target


def move_with_errors(path: Path, folder_name: str) -> Path:
    """Move ``path`` and its errors file (if any) into ``folder_name`` beside it."""
    folder = Path(folder_name) if os.path.isabs(folder_name) else path.parent / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, path.name)
    shutil.move(path, target)
    errors = errors_path(path)
    if errors.exists():
        shutil.move(errors, errors_path(target))
    return target


def dry_rows(options: CsvOptions, path: Path, source: str) -> Iterator[FileRow]:
    """Every row of ``path`` read as the trigger reads it (encoding, delimiter, header
    mapping, quarantine), in order, without writing anything."""
    try:
        facts = inspect_file(path, options.encoding)
    except LookupError as exc:
        yield FileRow(0, 0, problem=f"unknown encoding: {exc}")
        return
    if facts.problem:
        yield FileRow(0, 0, problem=facts.problem)
        return
    try:
        csv_file = CsvFile(path, facts, options)
    except CsvUnreadable as exc:
        yield FileRow(0, 0, problem=str(exc))
        return
    with csv_file:
        for note in csv_file.notes:
            yield FileRow(0, 0, note=note)
        trigger = {"kind": "csv", "source": source, "file": path.name}
        try:
            for batch in csv_file.batches():
                found = [
                    FileRow(n, line, Event(data, {**trigger, "row": n, "line": line}))
                    for n, line, data in batch.rows
                ]
                found += [FileRow(b.row, b.line, problem=b.reason) for b in batch.bad]
                yield from sorted(found, key=lambda r: r.row)
        except CsvUnreadable as exc:
            yield FileRow(0, 0, problem=f"the rest of the file is unreadable: {exc}")
