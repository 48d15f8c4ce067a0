"""The ``workers`` table on SQLite: each worker's heartbeat and what it holds."""

from __future__ import annotations

import sqlite3

from nextstep.engine.ledger.codec import dumps, loads
from nextstep.engine.ledger.leases import WorkerRecord

_COLUMNS = "id, host, pid, started_at, last_seen, lease, holds, stopped_at"


def heartbeat(conn: sqlite3.Connection, worker: WorkerRecord) -> None:
    """Insert or refresh ``worker``'s row."""
    conn.execute(
        f"INSERT INTO workers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL) "
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


def read_workers(conn: sqlite3.Connection) -> list[WorkerRecord]:
    """Every worker row, the most recently seen first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM workers ORDER BY last_seen DESC, id").fetchall()
    return [WorkerRecord(r[0], r[1], int(r[2]), r[3], r[4], r[5], loads(r[6]), r[7]) for r in rows]


def stop_worker(conn: sqlite3.Connection, worker_id: str, now: float) -> None:
    """``worker_id`` stopped cleanly: it holds nothing any more."""
    conn.execute(
        "UPDATE workers SET stopped_at = ?, last_seen = ?, holds = '{}' WHERE id = ?",
        (now, now, worker_id),
    )
