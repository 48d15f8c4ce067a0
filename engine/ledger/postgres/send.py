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
from nextstep.engine.ledger.leases import RECOVERED_REASON, Recovered
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
INTERRUPTED_REASON = RECOVERED_REASON
LEASE_LOST_REASON = "its worker stopped before sending it: due again"
_LEASE_LOST = dumps({"state": "queued", "reason": LEASE_LOST_REASON})
_EXPIRED = dumps({"state": "expired", "reason": EXPIRED_REASON})
_INTERRUPTED = dumps({"state": "in_doubt", "reason": INTERRUPTED_REASON})

_LEASE = (
    "WITH expired AS (UPDATE notifications SET state = 'expired', reason = %(reason)s, "
    "updated_at = %(now)s, next_attempt_at = NULL WHERE id = ANY(ARRAY("
    "SELECT id FROM notifications WHERE state = 'queued' AND valid_until IS NOT NULL "
    "AND valid_until <= %(now)s FOR UPDATE SKIP LOCKED)) AND state = 'queued' RETURNING id), "
    "noted AS (INSERT INTO history (notification_id, at, kind, detail) "
    "SELECT id, %(now)s, 'state', %(detail)s FROM expired ORDER BY id) "
    "UPDATE notifications SET state = 'sending', updated_at = %(now)s, "
    "lease_owner = %(owner)s::text, lease_until = %(until)s::float8, marked_at = NULL "
    "WHERE id = ANY(ARRAY("
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
    "AND t.within IS NOT NULL THEN r.at + t.within ELSE t.deadline_at END, "
    "lease_owner = NULL, lease_until = NULL, marked_at = NULL "
    "FROM r WHERE t.id = r.id AND ((t.state = 'sending' "
    "AND (%s::text IS NULL OR t.lease_owner = %s::text)) OR (t.state = 'in_doubt' "
    "AND t.marked_at IS NOT NULL AND t.lease_owner = %s::text))) "
    "INSERT INTO history (notification_id, at, kind, detail) "
    "SELECT id, at, 'attempt', detail FROM r ORDER BY n"
)
_ATTEMPT = (
    "UPDATE notifications SET state = %s, attempts = attempts + %s, updated_at = %s, "
    "next_attempt_at = %s, provider_id = COALESCE(%s, provider_id), reason = %s, "
    "failure_class = %s, deadline_at = CASE WHEN %s = 'sent' AND within IS NOT NULL "
    "THEN %s + within ELSE deadline_at END, lease_owner = NULL, lease_until = NULL, "
    "marked_at = NULL WHERE id = %s AND ((state = 'sending' "
    "AND (%s::text IS NULL OR lease_owner = %s::text)) OR (state = 'in_doubt' "
    "AND marked_at IS NOT NULL AND lease_owner = %s::text))"
)
_REQUEUE = (
    "UPDATE notifications t SET state = 'queued', next_attempt_at = r.due, updated_at = %s, "
    "lease_owner = NULL, lease_until = NULL, marked_at = NULL "
    "FROM unnest(%b::bigint[], %b::float8[]) AS r(id, due) "
    "WHERE t.id = r.id AND t.state = 'sending' AND (%s::text IS NULL OR t.lease_owner = %s::text)"
)


def lease_due(
    conn: Conn,
    now: float,
    limit: int,
    channels: Sequence[str] | None,
    ids: Sequence[int] | None,
    owner: str | None = None,
    lease_until: float | None = None,
) -> list[Notification]:
    """Expire stale queued rows; move up to ``limit`` due ones to ``sending`` under
    ``owner``'s lease (until ``lease_until``), oldest first."""
    if limit <= 0 or (channels is not None and not channels) or (ids is not None and not ids):
        limit = 0  # still expire what is stale, as a lease always does
    params: dict[str, Any] = {
        "now": now,
        "limit": limit,
        "reason": EXPIRED_REASON,
        "detail": _EXPIRED,
        "channels": list(channels or ()),
        "ids": list(ids or ()),
        "owner": owner,
        "until": lease_until,
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


def record_attempts(conn: Conn, results: Sequence[AttemptResult], owner: str | None = None) -> None:
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
        conn.execute(_ATTEMPTS, (*columns(rows, 9), owner, owner, owner))
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
                    owner,
                    owner,
                    owner,
                )
                for r in results
            ],
        )
    add_history_text(
        conn, [(r.notification_id, float(r.at), "attempt", _attempt_detail(r)) for r in results]
    )


def requeue(
    conn: Conn, items: Sequence[tuple[int, float]], now: float, owner: str | None = None
) -> None:
    """Leased rows go back to ``queued``, due at the paired time; no attempt is counted."""
    if not items:
        return
    if unique([nid for nid, _ in items]):
        ids = [nid for nid, _ in items]
        conn.execute(_REQUEUE, (now, ids, [float(due) for _, due in items], owner, owner))
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE notifications SET state = 'queued', next_attempt_at = %s, updated_at = %s, "
            "lease_owner = NULL, lease_until = NULL, marked_at = NULL "
            "WHERE id = %s AND state = 'sending' AND (%s::text IS NULL OR lease_owner = %s::text)",
            [(due, now, nid, owner, owner) for nid, due in items],
        )


def mark_sending(conn: Conn, ids: Sequence[int], now: float, owner: str | None = None) -> list[int]:
    """Mark leased rows whose request is about to be written; returns the ids marked (a row
    whose lease was recovered by another worker is not: it must not be sent)."""
    if not ids:
        return []
    rows = conn.execute(
        "UPDATE notifications SET marked_at = %s WHERE id = ANY(%b::bigint[]) "
        "AND state = 'sending' AND (%s::text IS NULL OR lease_owner = %s::text) RETURNING id",
        (now, list(ids), owner, owner),
    ).fetchall()
    return [int(row[0]) for row in rows]


def renew_leases(conn: Conn, owner: str, until: float) -> int:
    """Extend every lease ``owner`` holds to ``until``; returns how many rows it holds."""
    cursor = conn.execute(
        "UPDATE notifications SET lease_until = %s WHERE state = 'sending' AND lease_owner = %s",
        (until, owner),
    )
    return cursor.rowcount


_RECOVER = (
    "WITH doomed AS (SELECT id, marked_at IS NOT NULL AS marked FROM notifications "
    "WHERE state = 'sending'{scope} FOR UPDATE SKIP LOCKED), "
    "doubt AS (UPDATE notifications t SET state = 'in_doubt', reason = %(reason)s, "
    "updated_at = %(now)s, next_attempt_at = NULL, lease_until = NULL "
    "FROM doomed d WHERE t.id = d.id AND d.marked RETURNING t.id), "
    "again AS (UPDATE notifications t SET state = 'queued', updated_at = %(now)s, "
    "next_attempt_at = COALESCE(t.next_attempt_at, %(now)s), lease_owner = NULL, "
    "lease_until = NULL, marked_at = NULL FROM doomed d WHERE t.id = d.id AND NOT d.marked "
    "RETURNING t.id), "
    "noted AS (INSERT INTO history (notification_id, at, kind, detail) "
    "SELECT id, %(now)s, 'state', %(doubt)s FROM doubt UNION ALL "
    "SELECT id, %(now)s, 'state', %(again)s FROM again) "
    "SELECT id, true FROM doubt UNION ALL SELECT id, false FROM again"
)
_RECOVER_ALL = _RECOVER.format(scope="")
_RECOVER_GONE = _RECOVER.format(
    scope=" AND (lease_until IS NULL OR lease_until <= %(now)s OR lease_owner IS NULL "
    "OR lease_owner = ANY(%(gone)s::text[]))"
)


def recover(conn: Conn, now: float, gone: Sequence[str] | None) -> Recovered:
    """Rows left ``sending`` whose lease ran out or whose owner is in ``gone`` (None: every
    ``sending`` row): marked ones may have reached the provider and become ``in_doubt``, the
    others are queued again as they were due. Rows being recovered by another worker at the
    same moment are skipped, not waited for."""
    params: dict[str, Any] = {
        "now": now,
        "reason": INTERRUPTED_REASON,
        "doubt": _INTERRUPTED,
        "again": _LEASE_LOST,
        "gone": list(gone or ()),
    }
    rows = conn.execute(_RECOVER_ALL if gone is None else _RECOVER_GONE, params).fetchall()
    doubt = sorted(int(r[0]) for r in rows if r[1])
    again = sorted(int(r[0]) for r in rows if not r[1])
    return Recovered(doubt, again)


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
