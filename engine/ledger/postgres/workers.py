"""The ``workers`` table on PostgreSQL: each worker's heartbeat and what it holds."""

from __future__ import annotations

from nextstep.engine.ledger.codec import dumps, loads
from nextstep.engine.ledger.leases import WorkerRecord
from nextstep.engine.ledger.postgres.sql import Conn

_COLUMNS = "id, host, pid, started_at, last_seen, lease, holds, stopped_at"


def heartbeat(conn: Conn, worker: WorkerRecord) -> None:
    """Insert or refresh ``worker``'s row."""
    conn.execute(
        f"INSERT INTO workers ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL) "
        "ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, "
        "lease = excluded.lease, holds = excluded.holds, stopped_at = NULL",
        (
            worker.id,
            worker.host,
            worker.pid,
            worker.started_at,
            worker.last_seen,
            worker.lease,
            dumps(dict(worker.holds)),
        ),
    )


def read_workers(conn: Conn) -> list[WorkerRecord]:
    """Every worker row, the most recently seen first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM workers ORDER BY last_seen DESC, id").fetchall()
    return [WorkerRecord(r[0], r[1], int(r[2]), r[3], r[4], r[5], loads(r[6]), r[7]) for r in rows]


def stop_worker(conn: Conn, worker_id: str, now: float) -> None:
    """``worker_id`` stopped cleanly: it holds nothing any more."""
    conn.execute(
        "UPDATE workers SET stopped_at = %s, last_seen = %s, holds = '{}' WHERE id = %s",
        (now, now, worker_id),
    )
