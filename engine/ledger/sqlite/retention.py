"""SQLite's side of retention (:mod:`nextstep.engine.ledger.retention`): batches of deletes,
each in its own short write transaction, and the incremental vacuum that gives their pages
back to the file system (on a ledger created with ``auto_vacuum = INCREMENTAL``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

from nextstep.engine.ledger.retention import doomed_acks_sql, doomed_notifications_sql
from nextstep.engine.ledger.sqlite.transaction import SqliteTransaction

VACUUM_PAGES = 2000  # pages given back per call (8 MB at 4 KB): a short write at a time


class SqlitePruning:
    """``prune`` and ``reclaim_space`` over the store's transactions (a mixin)."""

    def transaction(self) -> AbstractContextManager[SqliteTransaction]:
        """A write transaction (the store's)."""
        raise NotImplementedError

    def prune(self, table: str, before: float, limit: int) -> int:
        """Forget at most ``limit`` rows of ``table`` older than ``before``."""
        with self.transaction() as tx:
            conn = tx.connection
            if table == "notifications":
                sql = doomed_notifications_sql("?", "INDEXED BY notifications_created_rule_state")
                found = conn.execute(sql, (before,) * 3 + (limit,))
            else:
                sql = doomed_acks_sql("?", applied=table == "acks")
                found = conn.execute(sql, (before, limit))
            ids = [(row[0],) for row in found.fetchall()]
            if not ids:
                return 0
            if table == "notifications":
                conn.executemany("DELETE FROM history WHERE notification_id = ?", ids)
                conn.executemany("DELETE FROM notifications WHERE id = ?", ids)
            else:
                conn.executemany("DELETE FROM acks WHERE id = ?", ids)
            return len(ids)

    def reclaim_space(self) -> None:
        """Give free pages back, a few at a time, when the file allows it."""
        for _ in self._vacuum_rounds():
            pass

    def _vacuum_rounds(self) -> Iterator[int]:
        while True:
            with self.transaction() as tx:
                conn = tx.connection
                if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                    return  # a ledger made before 0010: see docs/operations.md
                free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                if not free:
                    return
                conn.execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES})").fetchall()
            yield free
