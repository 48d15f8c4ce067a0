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
import shutil
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nextstep.adapters.triggers.csv.detect import (
    SAMPLE_BYTES,
    FileFacts,
    detect_delimiter,
    field_names,
)
from nextstep.engine.plugins import EventResult

ERRORS_SUFFIX = ".errors.csv"


class CsvUnreadable(Exception):
    """The file cannot be read as CSV at all (no header, wrong encoding, broken quoting)."""


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How to read the files of one CSV source; ``None`` means detect."""

    delimiter: str | None = None
    encoding: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # normalised header -> field
    batch: int = 1000


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
        the rest of the file cannot be parsed."""
        try:
            yield from self._batches(skip)
        except (csv.Error, UnicodeError) as exc:
            raise CsvUnreadable(
                f"line {self._reader.line_num}: {type(exc).__name__}: {exc}"
            ) from exc

    def _batches(self, skip: int) -> Iterator[Batch]:
        fields, width, size = self.fields, len(self.fields), self._options.batch
        reader, strip = self._reader, str.strip
        rows: list[tuple[int, int, dict[str, str]]] = []
        bad: list[BadRow] = []
        number = 0
        line = reader.line_num + 1
        for raw in reader:
            start, line = line, reader.line_num + 1
            if not raw or (len(raw) == 1 and not raw[0].strip()):
                continue
            number += 1
            if number <= skip:
                continue
            if len(raw) == width:  # the usual row: no list of stripped values needed
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
                rows, bad = [], []
        if rows or bad:
            yield Batch(rows, bad, number, self.facts.size)

    def _width_error(self, values: Sequence[str]) -> str:
        width = len(self.fields)
        if len(values) < width:
            missing = ", ".join(self.fields[len(values) :])
            return f"missing column(s) {missing}: {len(values)} fields, the header has {width}"
        return f"{len(values)} fields, the header has only {width}"


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
    notification_ids: array[int] = field(default_factory=lambda: array("q"))


def failed_rows(batch: Batch, results: Sequence[EventResult]) -> list[BadRow]:
    """Rows a rule could not use (render error, bad phone…) with every rule's reason."""
    bad: list[BadRow] = []
    for (number, line, data), result in zip(batch.rows, results, strict=True):
        for r in result.results:
            if r.status == "error":
                errors = result.errors
                reason = "; ".join(f"rule {e.rule_id}: {e.reason}" for e in errors)
                bad.append(BadRow(number, line, reason, list(data.values())))
                break
    return bad


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
