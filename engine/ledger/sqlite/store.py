"""The SQLite ledger: one connection per store, guarded by a lock, in WAL mode.

Every unit of work is one explicit transaction (``BEGIN IMMEDIATE`` for writes, so two
processes never deadlock upgrading a read lock; a deferred ``BEGIN`` for reads). The store's
methods come from :class:`TransactionalStore`; the steps are :class:`SqliteTransaction`'s.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.migrations import MIGRATIONS
from nextstep.engine.ledger.sqlite.checkpoint import (
    DEFAULT_POLICY,
    Checkpointer,
    CheckpointPolicy,
    prepare_writer,
)
from nextstep.engine.ledger.sqlite.console import SqliteConsoleReads
from nextstep.engine.ledger.sqlite.retention import SqlitePruning
from nextstep.engine.ledger.sqlite.transaction import SqliteTransaction
from nextstep.engine.ledger.transactional import TransactionalStore

BUSY_TIMEOUT_MS = 10_000


def _statements(sql: str) -> list[str]:
    """Split a migration's SQL into complete statements."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


# (name, SQLite SQL) of every migration, in order.
STEPS = tuple((migration.name, migration.sqlite) for migration in MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: Sequence[tuple[str, str]] = STEPS) -> list[str]:
    """Apply the migrations not yet applied, each in one transaction with its bookkeeping row;
    returns the names applied now."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations ("
        "name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    applied: list[str] = []
    for name, sql in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked inside the write lock: another process may have just applied it.
            if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO migrations (name) VALUES (?)", (name,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"ledger migration {name} failed: {exc}") from exc
        applied.append(name)
    return applied


class SqliteStore(SqlitePruning, SqliteConsoleReads, TransactionalStore):
    """The embedded ledger (``sqlite:///path``); ``:memory:`` for tests."""

    def __init__(self, path: str, checkpoints: CheckpointPolicy | None = DEFAULT_POLICY) -> None:
        self.path = path
        self._lock = threading.Lock()
        # WAL checkpoints run on their own thread, never inside a commit (checkpoint.py);
        # None: SQLite's own, in the committing connection (a one-off command, a test).
        self.checkpointer: Checkpointer | None = None
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection, used from whichever thread holds the lock (the runner's worker).
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1e3
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # A new file gives the pages of pruned rows back (retention's incremental vacuum);
            # it must be set before the first table (an existing file: docs/operations.md).
            self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: a commit survives a process crash; only an OS crash can lose the
            # last transactions, never corrupt the file.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            migrate(self._conn)
            if checkpoints is not None and path != ":memory:":
                prepare_writer(self._conn, checkpoints)
                self.checkpointer = Checkpointer(path, checkpoints)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the ledger {path!r}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self.checkpointer is not None:
            self.checkpointer.close()
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[SqliteTransaction]:
        """One write transaction: ``with store.transaction() as tx: …``; commits on success,
        rolls back on any error; sqlite3 errors become :class:`StoreError`."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"ledger {self.path!r}: {exc}") from exc
            try:
                yield SqliteTransaction(conn)
                conn.execute("COMMIT")
                if self.checkpointer is not None:
                    self.checkpointer.nudge()
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"ledger {self.path!r}: {exc}") from exc
                raise

    @contextmanager
    def reading(self) -> Iterator[SqliteTransaction]:
        """A consistent read (a deferred transaction) under the store's lock."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN")
                try:
                    yield SqliteTransaction(conn)
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"ledger {self.path!r}: {exc}") from exc
