"""Opt-out lists as comma-separated files, for ``nextstep optout import`` and ``export``.

Columns (a header row names them, in any order and case): ``phone`` (required; any way
``to:`` reads a number), ``channel`` (a channel of nextstep.yaml; empty, ``*`` or ``all``:
every channel), ``note``, ``at`` (when they opted out, ISO 8601; empty: now). ``how`` is
ignored on import (an imported opt-out's is ``import``), so an export imports back unchanged.
The delimiter (``,`` or ``;``) and a UTF-8 byte order mark are recognised.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Iterable

# Python's module for comma-separated files (the tests' layout check allows this line).
from csv import Dialect, DictReader, Error, Sniffer, excel, writer
from dataclasses import dataclass, field
from typing import TextIO

from nextstep.engine.ledger.base import OptOut
from nextstep.engine.optout.entries import Directory, EntryError

COLUMNS = ("phone", "channel", "at", "how", "note")


@dataclass
class Imported:
    """What a file held: the opt-outs to add, and each line that could not be one."""

    entries: list[OptOut] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line 4: …"


def _moment(text: str, now: float) -> float:
    if not text.strip():
        return now
    try:
        parsed = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise EntryError(f"{text!r} is not an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()


def _reader(text: str) -> DictReader[str]:
    sample = text[:4096]
    try:
        dialect: type[Dialect] | Dialect = Sniffer().sniff(sample, delimiters=",;")
    except Error:
        dialect = excel
    return DictReader(io.StringIO(text), dialect=dialect)


def read_optouts(text: str, directory: Directory, now: float) -> Imported:
    """The opt-outs of a comma-separated file's text (its problems by line; the rest is taken)."""
    found = Imported()
    reader = _reader(text.removeprefix("\ufeff"))
    headers = {(name or "").strip().lower(): name for name in reader.fieldnames or ()}
    if "phone" not in headers:
        found.problems.append("line 1: no phone column (columns: phone, channel, note, at)")
        return found
    for row in reader:
        line = reader.line_num

        def cell(name: str, row: dict[str, str | None] = row) -> str:
            key = headers.get(name)
            return (row.get(key) or "") if key is not None else ""

        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue
        try:
            found.entries.append(
                OptOut(
                    directory.recipient(cell("phone")),
                    directory.channel(cell("channel")),
                    _moment(cell("at"), now),
                    "import",
                    cell("note").strip(),
                )
            )
        except EntryError as exc:
            found.problems.append(f"line {line}: {exc}")
    return found


def write_optouts(optouts: Iterable[OptOut], out: TextIO) -> int:
    """Write opt-outs as comma-separated lines with :data:`COLUMNS`; returns how many."""
    rows = writer(out, lineterminator="\n")
    rows.writerow(COLUMNS)
    count = 0
    for o in optouts:
        at = datetime.datetime.fromtimestamp(o.at, datetime.UTC).isoformat(timespec="seconds")
        rows.writerow((o.recipient, o.channel, at, o.how, o.note))
        count += 1
    return count
