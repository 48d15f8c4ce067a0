"""The SQLite ledger: one connection per store, guarded by a lock, in WAL mode.

Every public method is one explicit transaction (``BEGIN IMMEDIATE`` for writes, so two
processes never deadlock upgrading a read lock). The SQL lives in small modules of functions
that take the connection (:mod:`ledger.sqlite_write`, :mod:`ledger.sqlite_send`,
:mod:`nextstep.engine.ledger.sqlite_read`); a feature that needs more (acks, settling) adds its own
module the same way and runs it inside :meth:`SqliteStore.transaction`.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger import sqlite_console, sqlite_read, sqlite_send, sqlite_write
from nextstep.engine.ledger.base import (
    AttemptResult,
    Enqueued,
    HistoryEntry,
    NewNotification,
    Notification,
)
from nextstep.engine.ledger.migrations import MIGRATIONS
from nextstep.engine.ledger.reads import Cursor, Decision, Filters, Tally, Trace
from nextstep.engine.model import Progress, State

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


def migrate(
    conn: sqlite3.Connection, migrations: Sequence[tuple[str, str]] = MIGRATIONS
) -> list[str]:
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


class SqliteStore:
    """The embedded ledger (``sqlite:///path``); ``:memory:`` for tests."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection, used from whichever thread holds the lock (the runner's worker).
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1e3
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: a commit survives a process crash; only an OS crash can lose the
            # last transactions, never corrupt the file.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the ledger {path!r}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``with store.transaction() as conn: …``; commits on success,
        rolls back on any error; sqlite3 errors become :class:`StoreError`."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"ledger {self.path!r}: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"ledger {self.path!r}: {exc}") from exc
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (a deferred transaction) under the store's lock."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"ledger {self.path!r}: {exc}") from exc

    # -- writing events ------------------------------------------------------------------
    def enqueue(
        self, items: Sequence[NewNotification], progress: Sequence[Progress] = ()
    ) -> list[Enqueued]:
        """Write notifications and trigger progress in one transaction (see Store)."""
        with self.transaction() as conn:
            return sqlite_write.enqueue(conn, items, progress)

    def get_progress(self, key: str) -> str | None:
        """A trigger's last committed progress value."""
        with self.reading() as conn:
            return sqlite_write.get_progress(conn, key)

    def save_rule_version(self, rule_id: str, version: str, definition: Mapping[str, Any]) -> None:
        """Keep a rule's definition by version (a no-op when already kept)."""
        with self.transaction() as conn:
            sqlite_write.save_rule_version(conn, rule_id, version, definition)

    def get_rule_version(self, rule_id: str, version: str) -> Mapping[str, Any] | None:
        """A kept rule definition, None when unknown."""
        with self.reading() as conn:
            return sqlite_write.get_rule_version(conn, rule_id, version)

    # -- dispatching ---------------------------------------------------------------------
    def lease_due(
        self,
        now: float,
        limit: int,
        channels: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Notification]:
        """Lease due notifications (see Store)."""
        with self.transaction() as conn:
            return sqlite_send.lease_due(conn, now, limit, channels, ids)

    def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        """Apply a batch of attempt results in one transaction."""
        if not results:
            return
        with self.transaction() as conn:
            sqlite_send.record_attempts(conn, results)

    def requeue(self, items: Sequence[tuple[int, float]], now: float) -> None:
        """Return leased notifications to the queue without counting an attempt."""
        if not items:
            return
        with self.transaction() as conn:
            sqlite_send.requeue(conn, items, now)

    def next_due(
        self, channels: Sequence[str] | None = None, ids: Sequence[int] | None = None
    ) -> float | None:
        """Earliest ``next_attempt_at`` among queued notifications."""
        with self.reading() as conn:
            return sqlite_read.next_due(conn, channels, ids)

    def recover_interrupted(self, now: float) -> int:
        """Rows left in ``sending`` by a crash become ``in_doubt``; returns how many."""
        with self.transaction() as conn:
            return sqlite_send.recover_interrupted(conn, now)

    # -- reading -------------------------------------------------------------------------
    def get(self, notification_id: int) -> Notification | None:
        """One notification, None when unknown."""
        with self.reading() as conn:
            return sqlite_read.get(conn, notification_id)

    def find(
        self, *, provider_id: str | None = None, dedupe_key: str | None = None
    ) -> list[Notification]:
        """Notifications with this provider message id and/or dedupe key."""
        with self.reading() as conn:
            return sqlite_read.find(conn, provider_id=provider_id, dedupe_key=dedupe_key)

    def history(self, notification_id: int) -> list[HistoryEntry]:
        """A notification's history, oldest first."""
        with self.reading() as conn:
            return sqlite_read.history(conn, notification_id)

    def counts(
        self, since: float | None = None, rule_id: str | None = None
    ) -> dict[tuple[str, str], int]:
        """Notifications by (rule id, state) created since ``since``."""
        with self.reading() as conn:
            return sqlite_read.counts(conn, since, rule_id)

    def list(self, *, state: State | None = None, limit: int = 100) -> list[Notification]:
        """The newest notifications, of one state when given."""
        with self.reading() as conn:
            return sqlite_read.list_notifications(conn, state, limit)

    def queue_depth(self, now: float) -> int:
        """How many queued notifications are due at ``now``."""
        with self.reading() as conn:
            return sqlite_read.queue_depth(conn, now)

    # -- deciding in-doubt and cancelling ------------------------------------------------
    def release(self, notification_id: int, now: float) -> bool:
        """Queue an in-doubt notification again (the operator decided to send it)."""
        with self.transaction() as conn:
            return sqlite_send.release(conn, notification_id, now)

    def cancel(self, notification_id: int, now: float, reason: str = "cancelled") -> bool:
        """Cancel a queued or in-doubt notification."""
        with self.transaction() as conn:
            return sqlite_send.cancel(conn, notification_id, now, reason)

    # -- the web console (ledger.reads.ConsoleReads) ---------------------------------------
    def overview(
        self, rule_ids: Sequence[str], since: float, until: float, buckets: int
    ) -> builtins.list[Tally]:
        """Per rule: states, skip reasons, trend, median time to delivered (ConsoleReads)."""
        with self.reading() as conn:
            return sqlite_console.overview(conn, rule_ids, since, until, buckets)

    def browse(
        self, filters: Filters, after: Cursor | None, limit: int
    ) -> builtins.list[Notification]:
        """Notifications matching ``filters``, newest first (keyset paging)."""
        with self.reading() as conn:
            return sqlite_console.browse(conn, filters, after, limit)

    def trace(self, notification_id: int) -> Trace | None:
        """One notification, its history and its fallback chain."""
        with self.reading() as conn:
            return sqlite_console.trace(conn, notification_id)

    def in_doubt(self, limit: int) -> builtins.list[Notification]:
        """Notifications in doubt, oldest first."""
        with self.reading() as conn:
            return sqlite_console.in_doubt(conn, limit)

    def rule_versions(self, rule_id: str) -> dict[str, Mapping[str, Any]]:
        """Every kept definition of a rule, by version."""
        with self.reading() as conn:
            return sqlite_console.rule_versions(conn, rule_id)

    def decide(self, notification_id: int, decision: Decision) -> bool:
        """Release or cancel with a history line naming who and why."""
        with self.transaction() as conn:
            return sqlite_console.decide(conn, notification_id, decision)
