"""A PostgreSQL ledger written by ``nextstep ledger copy`` (a :class:`TableTarget`).

One connection of its own (not the store's pool: the copy is one long transaction), with the
store's text escaping (``text.register``), so text with NUL arrives as the store would have
written it. Rows go through ``COPY … FROM STDIN``, one statement per table whatever its size
(foreign keys between rows of one table are checked at its end). The commit waits for the WAL
flush (``synchronous_commit`` on), unlike the store's sessions: a copy is done once, and the
source may be deleted after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import psycopg
from psycopg import sql

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.copying import CopyRefused, Row, Table
from nextstep.engine.ledger.postgres import text
from nextstep.engine.ledger.postgres.sql import Conn
from nextstep.engine.ledger.postgres.store import CONNECT_TIMEOUT, shown


class PostgresLoad:
    """The PostgreSQL ledger at ``url`` (migrated already: ``open_store``), as a copy target."""

    def __init__(self, url: str) -> None:
        self.name = shown(url)
        try:
            self._conn: Conn = psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the ledger {self.name}: {exc}") from exc
        text.register(self._conn)

    def migrations(self) -> list[str]:
        """The migrations applied."""
        return [str(name) for (name,) in self._run("SELECT name FROM migrations")]

    def columns(self) -> dict[str, tuple[str, ...]]:
        """Every table of the current schema and its columns, in order."""
        found: dict[str, list[str]] = {}
        for table, column in self._run(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ):
            found.setdefault(str(table), []).append(str(column))
        return {table: tuple(names) for table, names in found.items()}

    def with_rows(self, tables: Sequence[str]) -> list[str]:
        """Those of ``tables`` that hold a row."""
        found = []
        for table in tables:
            query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
            if self._run(query)[0][0]:
                found.append(table)
        return found

    def load(
        self,
        tables: Sequence[Table],
        rows: Callable[[Table], Iterator[list[Row]]],
        *,
        replace: bool,
    ) -> dict[str, int]:
        """Everything in one transaction (see :class:`TableTarget`)."""
        written: dict[str, int] = {}
        try:
            with self._conn.transaction():
                self._conn.execute("SET LOCAL synchronous_commit = on")
                self._lock(tables)
                busy = [] if replace else self.with_rows([t.name for t in tables])
                if busy:  # written since the plan looked: a worker started on it meanwhile
                    raise CopyRefused(
                        f"the target {self.name} received rows (tables {', '.join(busy)}) "
                        "while the copy started; stop every worker on it and copy again"
                    )
                if replace and tables:
                    self._conn.execute(
                        sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                            sql.SQL(", ").join(sql.Identifier(t.name) for t in tables)
                        )
                    )
                for table in tables:
                    written[table.name] = self._copy(table, rows(table))
                    self._check(table)
                    self._continue_ids(table)
        except psycopg.Error as exc:
            raise StoreError(f"copy into {self.name} failed, nothing was kept: {exc}") from exc
        return written

    def _lock(self, tables: Sequence[Table]) -> None:
        """Nobody else reads or writes the tables until the copy commits (a worker started
        meanwhile waits, then sees the whole copy)."""
        if tables:
            self._conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.SQL(", ").join(sql.Identifier(t.name) for t in tables)
                )
            )

    def _copy(self, table: Table, batches: Iterator[list[Row]]) -> int:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns))
        )
        count = 0
        with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
            for batch in batches:
                for row in batch:
                    copy.write_row(row)
                count += len(batch)
        return count

    def _check(self, table: Table) -> None:
        (count,) = self._conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))
        ).fetchone() or (0,)
        if count != table.rows:
            raise StoreError(
                f"copy into {self.name}: {table.name} holds {count} rows, the source "
                f"{table.rows}; nothing was kept"
            )

    def _continue_ids(self, table: Table) -> None:
        """New rows get ids after every id the source gave out (``bigserial`` columns)."""
        if not table.last_id:
            return
        found = self._conn.execute(
            "SELECT pg_get_serial_sequence(%s, 'id')", (table.name,)
        ).fetchone()
        if found is not None and found[0] is not None:
            self._conn.execute("SELECT setval(%s, %s)", (found[0], table.last_id))

    def _run(self, query: str | sql.Composed) -> list[tuple[object, ...]]:
        try:
            return self._conn.execute(query).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"ledger {self.name}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()
