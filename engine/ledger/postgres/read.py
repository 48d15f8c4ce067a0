"""Reading the PostgreSQL ledger: notifications, history, counts, queue depth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nextstep.engine.ledger.base import HistoryEntry, Notification
from nextstep.engine.ledger.postgres.sql import Conn
from nextstep.engine.ledger.rows import (
    BY_DEDUPE_KEY,
    COLUMNS,
    to_history,
    to_notification,
    with_created,
)
from nextstep.engine.model import State


def get(conn: Conn, notification_id: int) -> Notification | None:
    """One notification."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE id = %s", (notification_id,)
    ).fetchone()
    return None if row is None else to_notification(row)


def find(conn: Conn, *, provider_id: str | None, dedupe_key: str | None) -> list[Notification]:
    """Notifications matching every criterion given (none given: none found)."""
    clauses: list[str] = []
    params: list[Any] = []
    if provider_id is not None:
        clauses.append("provider_id = %s")
        params.append(provider_id)
    if dedupe_key is not None:
        clauses.append(BY_DEDUPE_KEY.replace("?", "%s"))
        params += [dedupe_key] * 2
    if not clauses:
        return []
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE {' AND '.join(clauses)} ORDER BY id", params
    ).fetchall()
    return [to_notification(row) for row in rows]


def history(conn: Conn, notification_id: int) -> list[HistoryEntry]:
    """Every history line of one notification, oldest first."""
    rows = conn.execute(
        "SELECT notification_id, at, kind, detail FROM history WHERE notification_id = %s "
        "ORDER BY id",
        (notification_id,),
    ).fetchall()
    created = conn.execute(
        "SELECT created_at FROM notifications WHERE id = %s", (notification_id,)
    ).fetchone()
    lines = [to_history(row) for row in rows]
    return with_created(notification_id, None if created is None else created[0], lines)


def counts(conn: Conn, since: float | None, rule_id: str | None) -> dict[tuple[str, str], int]:
    """Number of notifications by (rule id, state)."""
    clauses = ["true"]
    params: list[Any] = []
    if since is not None:
        clauses.append("created_at >= %s")
        params.append(since)
    if rule_id is not None:
        clauses.append("rule_id = %s")
        params.append(rule_id)
    rows = conn.execute(
        f"SELECT rule_id, state, count(*) FROM notifications WHERE {' AND '.join(clauses)} "
        "GROUP BY rule_id, state",
        params,
    ).fetchall()
    return {(row[0], row[1]): int(row[2]) for row in rows}


def list_notifications(conn: Conn, state: State | None, limit: int) -> list[Notification]:
    """The newest notifications, optionally of one state."""
    if state is None:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM notifications ORDER BY id DESC LIMIT %s", (limit,)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM notifications WHERE state = %s "
            f"ORDER BY created_at DESC, id DESC LIMIT %s",
            (state.value, limit),
        ).fetchall()
    return [to_notification(row) for row in rows]


def queue_depth(conn: Conn, now: float) -> int:
    """Queued notifications due at ``now``."""
    row = conn.execute(
        "SELECT count(*) FROM notifications WHERE state = 'queued' AND next_attempt_at <= %s",
        (now,),
    ).fetchone()
    return 0 if row is None else int(row[0])


def next_due(conn: Conn, channels: Sequence[str] | None, ids: Sequence[int] | None) -> float | None:
    """The earliest ``next_attempt_at`` of queued notifications in scope."""
    clauses = ["state = 'queued'"]
    params: list[Any] = []
    if channels is not None:
        clauses.append("channel = ANY(%b::text[])")
        params.append(list(channels))
    if ids is not None:
        clauses.append("id = ANY(%b::bigint[])")
        params.append(list(ids))
    row = conn.execute(
        f"SELECT min(next_attempt_at) FROM notifications WHERE {' AND '.join(clauses)}", params
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])
