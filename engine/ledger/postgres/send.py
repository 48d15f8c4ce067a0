"""Dispatching against the PostgreSQL ledger: lease, record attempts, requeue, recover, decide.

A lease is one statement: queued rows past ``valid_until`` expire (with their history line) and
the due ones are taken with ``FOR UPDATE SKIP LOCKED``, so two processes leasing at once (a
``nextstep send`` beside the daemon) never take the same row and never wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nextstep.engine.ledger.base import AttemptResult, Notification
from nextstep.engine.ledger.codec import dumps
from nextstep.engine.ledger.postgres.sql import (
    Conn,
    add_history,
    add_history_text,
    columns,
    real,
    unique,
)
from nextstep.engine.ledger.rows import COLUMNS, to_notification

EXPIRED_REASON = "not sent before valid_for ran out"
INTERRUPTED_REASON = "interrupted while sending: the provider may have accepted it"
_EXPIRED = dumps({"state": "expired", "reason": EXPIRED_REASON})
_INTERRUPTED = dumps({"state": "in_doubt", "reason": INTERRUPTED_REASON})

_LEASE = (
    "WITH expired AS (UPDATE notifications SET state = 'expired', reason = %(reason)s, "
    "updated_at = %(now)s, next_attempt_at = NULL WHERE id = ANY(ARRAY("
    "SELECT id FROM notifications WHERE state = 'queued' AND valid_until IS NOT NULL "
    "AND valid_until <= %(now)s FOR UPDATE SKIP LOCKED)) AND state = 'queued' RETURNING id), "
    "noted AS (INSERT INTO history (notification_id, at, kind, detail) "
    "SELECT id, %(now)s, 'state', %(detail)s FROM expired ORDER BY id) "
    "UPDATE notifications SET state = 'sending', updated_at = %(now)s WHERE id = ANY(ARRAY("
    "SELECT id FROM notifications WHERE state = 'queued' AND next_attempt_at <= %(now)s "
    "AND (valid_until IS NULL OR valid_until > %(now)s){scope} "
    "ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)) "
    f"AND state = 'queued' RETURNING {COLUMNS}"
)
_SCOPES = {
    (False, False): _LEASE.format(scope=""),
    (True, False): _LEASE.format(scope=" AND channel = ANY(%(channels)b::text[])"),
    (False, True): _LEASE.format(scope=" AND id = ANY(%(ids)b::bigint[])"),
    (True, True): _LEASE.format(
        scope=" AND channel = ANY(%(channels)b::text[]) AND id = ANY(%(ids)b::bigint[])"
    ),
}
_ATTEMPTS = (
    "WITH r AS (SELECT * FROM unnest(%b::bigint[], %b::text[], %b::int[], %b::float8[], "
    "%b::float8[], %b::text[], %b::text[], %b::text[], %b::text[]) WITH ORDINALITY "
    "AS r(id, state, counted, at, next_at, provider_id, reason, failure_class, detail, n)), "
    "moved AS (UPDATE notifications t SET state = r.state, attempts = t.attempts + r.counted, "
    "updated_at = r.at, next_attempt_at = r.next_at, "
    "provider_id = COALESCE(r.provider_id, t.provider_id), reason = r.reason, "
    "failure_class = r.failure_class, deadline_at = CASE WHEN r.state = 'sent' "
    "AND t.within IS NOT NULL THEN r.at + t.within ELSE t.deadline_at END "
    "FROM r WHERE t.id = r.id AND t.state = 'sending') "
    "INSERT INTO history (notification_id, at, kind, detail) "
    "SELECT id, at, 'attempt', detail FROM r ORDER BY n"
)
_ATTEMPT = (
    "UPDATE notifications SET state = %s, attempts = attempts + %s, updated_at = %s, "
    "next_attempt_at = %s, provider_id = COALESCE(%s, provider_id), reason = %s, "
    "failure_class = %s, deadline_at = CASE WHEN %s = 'sent' AND within IS NOT NULL "
    "THEN %s + within ELSE deadline_at END WHERE id = %s AND state = 'sending'"
)
_REQUEUE = (
    "UPDATE notifications t SET state = 'queued', next_attempt_at = r.due, updated_at = %s "
    "FROM unnest(%b::bigint[], %b::float8[]) AS r(id, due) "
    "WHERE t.id = r.id AND t.state = 'sending'"
)


def lease_due(
    conn: Conn,
    now: float,
    limit: int,
    channels: Sequence[str] | None,
    ids: Sequence[int] | None,
) -> list[Notification]:
    """Expire stale queued rows; move up to ``limit`` due ones to ``sending``, oldest first."""
    if limit <= 0 or (channels is not None and not channels) or (ids is not None and not ids):
        limit = 0  # still expire what is stale, as a lease always does
    params: dict[str, Any] = {
        "now": now,
        "limit": limit,
        "reason": EXPIRED_REASON,
        "detail": _EXPIRED,
        "channels": list(channels or ()),
        "ids": list(ids or ()),
    }
    sql = _SCOPES[(channels is not None, ids is not None)]
    leased = [to_notification(row) for row in conn.execute(sql, params).fetchall()]
    leased.sort(key=lambda n: (n.next_attempt_at or 0.0, n.id))  # RETURNING has no order
    return leased


def _attempt_detail(result: AttemptResult) -> str:
    detail: dict[str, Any] = {
        "attempt": result.attempt,
        "state": result.state.value,
        "outcome": dict(result.outcome),
    }
    if result.next_attempt_at is not None:
        detail["next_attempt_at"] = result.next_attempt_at
    if result.reason:
        detail["reason"] = result.reason
    if not result.counts:
        detail["counted"] = False
    return dumps(detail)


def record_attempts(conn: Conn, results: Sequence[AttemptResult]) -> None:
    """Apply attempt results; each also becomes an ``attempt`` history line."""
    if not results:
        return
    if unique([r.notification_id for r in results]):
        rows = [
            (
                r.notification_id,
                r.state.value,
                1 if r.counts else 0,
                float(r.at),
                real(r.next_attempt_at),
                r.provider_id,
                r.reason,
                r.failure_class,
                _attempt_detail(r),
            )
            for r in results
        ]
        conn.execute(_ATTEMPTS, columns(rows, 9))
        return
    # One row twice in a batch: one by one, each seeing the one before (as SQLite does).
    with conn.cursor() as cursor:
        cursor.executemany(
            _ATTEMPT,
            [
                (
                    r.state.value,
                    1 if r.counts else 0,
                    r.at,
                    r.next_attempt_at,
                    r.provider_id,
                    r.reason,
                    r.failure_class,
                    r.state.value,
                    r.at,
                    r.notification_id,
                )
                for r in results
            ],
        )
    add_history_text(
        conn, [(r.notification_id, float(r.at), "attempt", _attempt_detail(r)) for r in results]
    )


def requeue(conn: Conn, items: Sequence[tuple[int, float]], now: float) -> None:
    """Leased rows go back to ``queued``, due at the paired time; no attempt is counted."""
    if not items:
        return
    if unique([nid for nid, _ in items]):
        conn.execute(_REQUEUE, (now, [nid for nid, _ in items], [float(due) for _, due in items]))
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE notifications SET state = 'queued', next_attempt_at = %s, updated_at = %s "
            "WHERE id = %s AND state = 'sending'",
            [(due, now, nid) for nid, due in items],
        )


def recover_interrupted(conn: Conn, now: float) -> int:
    """Rows left ``sending`` may have reached the provider: they become ``in_doubt``."""
    row = conn.execute(
        "WITH moved AS (UPDATE notifications SET state = 'in_doubt', reason = %s, "
        "updated_at = %s, next_attempt_at = NULL WHERE state = 'sending' RETURNING id), "
        "noted AS (INSERT INTO history (notification_id, at, kind, detail) "
        "SELECT id, %s, 'state', %s FROM moved ORDER BY id) SELECT count(*) FROM moved",
        (INTERRUPTED_REASON, now, now, _INTERRUPTED),
    ).fetchone()
    return 0 if row is None else int(row[0])


def release(conn: Conn, notification_id: int, now: float) -> bool:
    """An in-doubt notification is queued again, due now."""
    row = conn.execute(
        "UPDATE notifications SET state = 'queued', next_attempt_at = %s, updated_at = %s, "
        "reason = '' WHERE id = %s AND state = 'in_doubt' RETURNING id",
        (now, now, notification_id),
    ).fetchone()
    if row is None:
        return False
    detail = {"state": "queued", "from": "in_doubt", "by": "operator"}
    add_history(conn, [(notification_id, now, "state", detail)])
    return True


def cancel(conn: Conn, notification_id: int, now: float, reason: str) -> bool:
    """A queued or in-doubt notification is cancelled (one being sent cannot be)."""
    row = conn.execute(
        "UPDATE notifications SET state = 'cancelled', reason = %s, updated_at = %s, "
        "next_attempt_at = NULL WHERE id = %s AND state IN ('queued', 'in_doubt') RETURNING id",
        (reason, now, notification_id),
    ).fetchone()
    if row is None:
        return False
    add_history(conn, [(notification_id, now, "state", {"state": "cancelled", "reason": reason})])
    return True
