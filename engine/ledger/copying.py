"""Copying a whole ledger into another backend (``nextstep ledger copy``): SQLite to PostgreSQL.

The copy is table by table, row for row: every table the migrations created (notifications,
history, acks, progress, rule versions, opt-outs, inbound messages, and any a later migration
adds), with the same ids, so that notification ids, provider ids, histories, dedupe keys and
trigger progress mean the same on the other side. The backends do the work
(:class:`TableSource` in ``sqlite/export.py``, :class:`TableTarget` in ``postgres/load.py``);
this module only decides what may be copied and in what order, so no driver is named here.

What keeps the copy safe:
- the two ledgers have applied the same named migrations (the same columns on both sides);
- the target holds no row unless ``replace`` is asked (then it is emptied first);
- the source is read in one snapshot and the target written in one transaction, so the target
  gets everything or nothing; its row counts are checked before the commit;
- the target's id sequences continue after the largest id copied (and after ids SQLite has
  given out and pruned since, such as inbound messages), so new rows never reuse an id;
- while a daemon holds the SQLite ledger (``<ledger>.lock`` locked), the copy is refused.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from nextstep.engine.errors import StoreError

Row = tuple[Any, ...]
# Tables that other tables' rows point at come first (history → notifications); tables a
# later migration adds follow, by name.
ORDER = (
    "rule_versions",
    "progress",
    "notifications",
    "history",
    "acks",
    "optouts",
    "inbound_messages",
)
DEFAULT_BATCH = 5_000


class CopyRefused(StoreError):
    """The copy would lose or mix up rows (a busy source, a target with rows, other schemas)."""


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the source: its columns in order, how many rows, and the largest id it
    has given out (None when it has no integer ``id``)."""

    name: str
    columns: tuple[str, ...]
    rows: int
    last_id: int | None = None


@runtime_checkable
class TableSource(Protocol):
    """A ledger read for a copy, in one snapshot (a backend's export)."""

    name: str

    def migrations(self) -> list[str]:
        """The names of the migrations this ledger has applied."""
        ...

    def tables(self) -> list[Table]:
        """Every table of the ledger but the migrations' bookkeeping."""
        ...

    def batches(self, table: Table, size: int) -> Iterator[list[Row]]:
        """The table's rows in the order they were written, ``size`` at a time, each row's
        values in ``table.columns`` order."""
        ...

    def close(self) -> None:
        """Release the connection (ends the snapshot)."""
        ...


@runtime_checkable
class TableTarget(Protocol):
    """A ledger written by a copy (a backend's import)."""

    name: str

    def migrations(self) -> list[str]:
        """The names of the migrations this ledger has applied."""
        ...

    def columns(self) -> dict[str, tuple[str, ...]]:
        """Every table of the ledger and its columns."""
        ...

    def with_rows(self, tables: Sequence[str]) -> list[str]:
        """Those of ``tables`` that hold at least one row."""
        ...

    def load(
        self,
        tables: Sequence[Table],
        rows: Callable[[Table], Iterator[list[Row]]],
        *,
        replace: bool,
    ) -> dict[str, int]:
        """In one transaction: empty ``tables`` first when ``replace``, write every table's
        rows, continue each id sequence after ``Table.last_id``, check the counts against
        ``Table.rows``; returns the rows written by table. Nothing is kept on any error."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@dataclass(frozen=True, slots=True)
class CopySummary:
    """What a copy wrote: rows by table (in copy order), whether the target was emptied first,
    and how long it took."""

    source: str
    target: str
    tables: Mapping[str, int]
    replaced: bool
    seconds: float

    @property
    def rows(self) -> int:
        """Rows written, every table together."""
        return sum(self.tables.values())

    def as_json(self) -> dict[str, Any]:
        """The summary ``nextstep ledger copy --json`` prints."""
        return {
            "source": self.source,
            "target": self.target,
            "tables": dict(self.tables),
            "rows": self.rows,
            "replaced": self.replaced,
            "seconds": round(self.seconds, 3),
        }


def ordered(tables: Sequence[Table]) -> list[Table]:
    """``tables`` in copy order: :data:`ORDER` first, then any other by name."""
    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(tables, key=lambda t: (rank.get(t.name, len(ORDER)), t.name))


def plan(source: TableSource, target: TableTarget, *, replace: bool) -> list[Table]:
    """The tables to copy, in order; :class:`CopyRefused` when the copy would not be faithful
    (other migrations, a table or column the target lacks, a target with rows)."""
    mine, theirs = source.migrations(), target.migrations()
    if set(mine) != set(theirs):
        only_source = sorted(set(mine) - set(theirs))
        only_target = sorted(set(theirs) - set(mine))
        raise CopyRefused(
            f"the ledgers have applied different migrations (only the source: "
            f"{', '.join(only_source) or 'none'}; only the target: "
            f"{', '.join(only_target) or 'none'}): open both with the same nextstep version"
        )
    tables = ordered(source.tables())
    known = target.columns()
    for table in tables:
        if table.name not in known:
            raise CopyRefused(f"the target {target.name} has no table {table.name}")
        missing = [c for c in table.columns if c not in known[table.name]]
        if missing:
            raise CopyRefused(
                f"the target {target.name} has no column {', '.join(missing)} in {table.name}"
            )
    busy = target.with_rows([t.name for t in tables])
    if busy and not replace:
        raise CopyRefused(
            f"the target {target.name} already holds rows (tables {', '.join(busy)}); "
            "copy into an empty ledger, or pass --replace to empty it first"
        )
    return tables


def copy_ledger(
    source: TableSource,
    target: TableTarget,
    *,
    replace: bool = False,
    batch: int = DEFAULT_BATCH,
    on_rows: Callable[[str, int], None] | None = None,
) -> CopySummary:
    """Copy every table of ``source`` into ``target`` (see the module docstring);
    ``on_rows(table, n)`` after each batch of ``n`` rows is read."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    started = time.monotonic()
    tables = plan(source, target, replace=replace)

    def rows(table: Table) -> Iterator[list[Row]]:
        for chunk in source.batches(table, batch):
            yield chunk
            if on_rows is not None:
                on_rows(table.name, len(chunk))

    written = target.load(tables, rows, replace=replace)
    return CopySummary(source.name, target.name, written, replace, time.monotonic() - started)


def lock_path(ledger: Path) -> Path:
    """The file a daemon holds locked (``flock``) while it uses the SQLite ledger ``ledger``."""
    return ledger.with_name(ledger.name + ".lock")


@contextmanager
def not_in_use(ledger: Path) -> Iterator[None]:
    """Hold ``<ledger>.lock`` (when the file exists) for the block, so no daemon starts on the
    ledger meanwhile; :class:`CopyRefused` when a daemon holds it now."""
    path = lock_path(ledger)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield  # no daemon of this version has run on it: nothing to check
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise CopyRefused(
                f"a daemon is using the ledger {ledger} ({path} is locked): stop every "
                "`nextstep run` on it first, then copy"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sqlite_file(url_or_path: str) -> Path:
    """The file of a SQLite ledger given as ``sqlite:///PATH`` or as a path."""
    path = url_or_path.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        raise StoreError(f"{url_or_path!r} names no ledger file")
    return Path(path)
