"""PostgreSQL's side of retention (:mod:`nextstep.engine.ledger.retention`): batches of plain
deletes, each its own short transaction; autovacuum makes the space reusable."""

from __future__ import annotations

from contextlib import AbstractContextManager

from nextstep.engine.ledger.postgres.transaction import PostgresTransaction
from nextstep.engine.ledger.retention import doomed_acks_sql, doomed_notifications_sql


class PostgresPruning:
    """``prune`` and ``reclaim_space`` over the store's transactions (a mixin)."""

    def transaction(self) -> AbstractContextManager[PostgresTransaction]:
        """A write transaction (the store's)."""
        raise NotImplementedError

    def prune(self, table: str, before: float, limit: int) -> int:
        """Forget at most ``limit`` rows of ``table`` older than ``before``."""
        cut = float(before)
        with self.transaction() as tx:
            conn = tx.connection
            if table == "notifications":
                # Locked while they go: an ack or a release changing one waits for the commit
                # (and finds it gone); rows locked by such a change are left for the next round.
                doomed = doomed_notifications_sql("%s") + " FOR UPDATE OF n SKIP LOCKED"
                ids = [r[0] for r in conn.execute(doomed, (cut, cut, cut, limit)).fetchall()]
                if ids:
                    conn.execute("DELETE FROM history WHERE notification_id = ANY(%s)", (ids,))
                    conn.execute("DELETE FROM notifications WHERE id = ANY(%s)", (ids,))
                return len(ids)
            doomed = doomed_acks_sql("%s", applied=table == "acks")
            rows = conn.execute(
                f"DELETE FROM acks WHERE id IN ({doomed}) RETURNING 1", (cut, limit)
            ).fetchall()
            return len(rows)

    def reclaim_space(self) -> None:
        """Nothing to do: autovacuum makes the deleted rows' space reusable."""
