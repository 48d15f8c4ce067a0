"""A SQLite ledger read for ``nextstep ledger copy`` (a :class:`TableSource`).

One connection of its own, in one read transaction: in WAL mode that is one snapshot, so the
tables agree with each other even if something wrote meanwhile (the command refuses a ledger a
daemon holds). Rows come in ``rowid`` order by keyset pages, so a large table never sits in
memory; values are passed as SQLite holds them (JSON columns stay the exact text written).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.copying import Row, Table


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteExport:
    """Every table of the SQLite ledger at ``path`` (migrated already: ``open_store``)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self._closed = False
        self._tables: list[Table] | None = None
        if not path.is_file():
            raise StoreError(f"no SQLite ledger at {path}")
        try:
            self._conn = sqlite3.connect(path, isolation_level=None)
            self._conn.execute("BEGIN")  # the snapshot starts at the first read
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the ledger {path}: {exc}") from exc

    def migrations(self) -> list[str]:
        """The migrations applied (empty when the file is not a ledger)."""
        if not self._has("migrations"):
            return []
        return [name for (name,) in self._conn.execute("SELECT name FROM migrations")]

    def tables(self) -> list[Table]:
        """Every ledger table, with its columns, row count and last id given out (counted
        once: the snapshot does not change)."""
        if self._tables is None:
            self._tables = self._read_tables()
        return list(self._tables)

    def _read_tables(self) -> list[Table]:
        names = [
            name
            for (name,) in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'migrations' ORDER BY name"
            )
        ]
        return [self._table(name) for name in names]

    def _table(self, name: str) -> Table:
        q = _quoted(name)
        columns = tuple(row[1] for row in self._conn.execute(f"PRAGMA table_info({q})"))
        (rows,) = self._conn.execute(f"SELECT count(*) FROM {q}").fetchone()
        last_id: int | None = None
        if "id" in columns:
            (last_id,) = self._conn.execute(f"SELECT coalesce(max(id), 0) FROM {q}").fetchone()
            # AUTOINCREMENT remembers ids given out and pruned since (inbound messages): a
            # cursor may be past every id still there, so the target must continue after it.
            if self._has("sqlite_sequence"):
                given = self._conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = ?", (name,)
                ).fetchone()
                if given is not None:
                    last_id = max(last_id, int(given[0]))
        return Table(name, columns, int(rows), last_id)

    def _has(self, table: str) -> bool:
        found = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return found is not None

    def batches(self, table: Table, size: int) -> Iterator[list[Row]]:
        """The rows of ``table`` in rowid order, ``size`` at a time."""
        select = (
            f"SELECT rowid, {', '.join(_quoted(c) for c in table.columns)} "
            f"FROM {_quoted(table.name)} WHERE rowid > ? ORDER BY rowid LIMIT ?"
        )
        after = -(2**63)
        while True:
            try:
                page = self._conn.execute(select, (after, size)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read {table.name} of {self.name}: {exc}") from exc
            if not page:
                return
            after = page[-1][0]
            yield [tuple(row[1:]) for row in page]

    def close(self) -> None:
        """End the snapshot and close the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        self._conn.close()
