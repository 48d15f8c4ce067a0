"""Reading the SQLite ledger: notifications, history, counts, queue depth.

Functions take a connection inside a read of :class:`SqliteStore` (or a write transaction).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from nextstep.engine.ledger.base import HistoryEntry, Notification
from nextstep.engine.ledger.rows import BY_DEDUPE_KEY, with_created
from nextstep.engine.ledger.sqlite.rows import COLUMNS, placeholders, to_history, to_notification
from nextstep.engine.model import State


def get(conn: sqlite3.Connection, notification_id: int) -> Notification | None:
    """One notification."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
    ).fetchone()
    return None if row is None else to_notification(row)


def find(
    conn: sqlite3.Connection, *, provider_id: str | None, dedupe_key: str | None
) -> list[Notification]:
    """Notifications matching every criterion given (none given: none found)."""
    clauses: list[str] = []
    params: list[Any] = []
    if provider_id is not None:
        clauses.append("provider_id = ?")
        params.append(provider_id)
    if dedupe_key is not None:
        clauses.append(BY_DEDUPE_KEY.replace("?", "?"))
        params += [dedupe_key] * 2
    if not clauses:
        return []
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE {' AND '.join(clauses)} ORDER BY id", params
    ).fetchall()
    return [to_notification(row) for row in rows]


def history(conn: sqlite3.Connection, notification_id: int) -> list[HistoryEntry]:
    """Every history line of one notification, oldest first."""
    rows = conn.execute(
        "SELECT notification_id, at, kind, detail FROM history WHERE notification_id = ? "
        "ORDER BY id",
        (notification_id,),
    ).fetchall()
    created = conn.execute(
        "SELECT created_at FROM notifications WHERE id = ?", (notification_id,)
    ).fetchone()
    lines = [to_history(row) for row in rows]
    return with_created(notification_id, None if created is None else created[0], lines)


def counts(
    conn: sqlite3.Connection, since: float | None, rule_id: str | None
) -> dict[tuple[str, str], int]:
    """Number of notifications by (rule id, state)."""
    clauses = ["1 = 1"]
    params: list[Any] = []
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(since)
    if rule_id is not None:
        clauses.append("rule_id = ?")
        params.append(rule_id)
    # Over a window: only the window's entries of the covering created-first index (a ledger
    # has no statistics, and the rule-first one, without the state, would read every row).
    hint = " INDEXED BY notifications_created_rule_state" if since is not None else ""
    rows = conn.execute(
        f"SELECT rule_id, state, COUNT(*) FROM notifications{hint} "
        f"WHERE {' AND '.join(clauses)} GROUP BY rule_id, state",
        params,
    ).fetchall()
    return {(row[0], row[1]): int(row[2]) for row in rows}


def list_notifications(
    conn: sqlite3.Connection, state: State | None, limit: int
) -> list[Notification]:
    """The newest notifications, optionally of one state."""
    if state is None:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM notifications ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM notifications WHERE state = ? "
            f"ORDER BY created_at DESC, id DESC LIMIT ?",
            (state.value, limit),
        ).fetchall()
    return [to_notification(row) for row in rows]


def queue_depth(conn: sqlite3.Connection, now: float) -> int:
    """Queued notifications due at ``now``."""
    row = conn.execute(
        "SELECT COUNT(*) FROM notifications WHERE state = 'queued' AND next_attempt_at <= ?",
        (now,),
    ).fetchone()
    return int(row[0])


def next_due(
    conn: sqlite3.Connection, channels: Sequence[str] | None, ids: Sequence[int] | None
) -> float | None:
    """The earliest ``next_attempt_at`` of queued notifications in scope."""
    clauses = ["state = 'queued'"]
    params: list[Any] = []
    if channels is not None:
        clauses.append(f"channel IN ({placeholders(len(channels))})")
        params.extend(channels)
    if ids is not None:
        clauses.append(f"id IN ({placeholders(len(ids))})")
        params.extend(ids)
    row = conn.execute(
        f"SELECT MIN(next_attempt_at) FROM notifications WHERE {' AND '.join(clauses)}", params
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])
