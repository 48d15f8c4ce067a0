"""Dispatching against the SQLite ledger: lease, record attempts, requeue, recover, decide.

Functions take the connection of an open transaction (:class:`SqliteTransaction` calls them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from nextstep.engine.ledger.base import AttemptResult, Notification
from nextstep.engine.ledger.leases import RECOVERED_REASON, Recovered
from nextstep.engine.ledger.sqlite.rows import COLUMNS, add_history, placeholders, to_notification

EXPIRED_REASON = "not sent before valid_for ran out"
INTERRUPTED_REASON = RECOVERED_REASON
LEASE_LOST_REASON = "its worker stopped before sending it: due again"


def _expire_stale(conn: sqlite3.Connection, now: float) -> None:
    """Queued notifications past their ``valid_until`` are expired, never sent late."""
    # INDEXED BY: the planner would otherwise pick the state index and scan the whole queue.
    rows = conn.execute(
        "UPDATE notifications SET state = 'expired', reason = ?, updated_at = ?, "
        "next_attempt_at = NULL WHERE id IN (SELECT id FROM notifications "
        "INDEXED BY notifications_valid_until WHERE state = 'queued' "
        "AND valid_until IS NOT NULL AND valid_until <= ?) RETURNING id",
        (EXPIRED_REASON, now, now),
    ).fetchall()
    detail = {"state": "expired", "reason": EXPIRED_REASON}
    add_history(conn, ((row[0], now, "state", detail) for row in rows))


def _scope(channels: Sequence[str] | None, ids: Sequence[int] | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if channels is not None:
        clauses.append(f"channel IN ({placeholders(len(channels))})")
        params.extend(channels)
    if ids is not None:
        clauses.append(f"id IN ({placeholders(len(ids))})")
        params.extend(ids)
    return "".join(f" AND {c}" for c in clauses), params


def lease_due(
    conn: sqlite3.Connection,
    now: float,
    limit: int,
    channels: Sequence[str] | None,
    ids: Sequence[int] | None,
    owner: str | None = None,
    lease_until: float | None = None,
) -> list[Notification]:
    """Move up to ``limit`` due queued rows to ``sending`` under ``owner``'s lease (until
    ``lease_until``) and return them, oldest due first."""
    _expire_stale(conn, now)
    if limit <= 0 or (channels is not None and not channels) or (ids is not None and not ids):
        return []
    scope, params = _scope(channels, ids)
    # INDEXED BY: walk the due index in order and stop at ``limit``, instead of sorting every
    # queued row on each lease (the planner prefers the state index without it).
    rows = conn.execute(
        "UPDATE notifications SET state = 'sending', updated_at = ?, lease_owner = ?, "
        "lease_until = ?, marked_at = NULL WHERE id IN ("
        "SELECT id FROM notifications INDEXED BY notifications_due "
        "WHERE state = 'queued' AND next_attempt_at <= ?"
        f"{scope} ORDER BY next_attempt_at, id LIMIT ?) RETURNING {COLUMNS}",
        (now, owner, lease_until, now, *params, limit),
    ).fetchall()
    leased = [to_notification(row) for row in rows]
    # RETURNING gives no order guarantee.
    leased.sort(key=lambda n: (n.next_attempt_at or 0.0, n.id))
    return leased


def _attempt_detail(result: AttemptResult) -> dict[str, Any]:
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
    return detail


# A result or a give-back applies only while the row is still this owner's lease (``?`` None:
# whoever holds it), and ends the lease.
_HELD = "state = 'sending' AND (? IS NULL OR lease_owner = ?)"
_UNLEASED = "lease_owner = NULL, lease_until = NULL, marked_at = NULL"
# A result also applies to a row its owner marked that another worker took back as in doubt
# (the owner was slow, not dead): the provider's answer settles the doubt.
_ANSWERED = f"(({_HELD}) OR (state = 'in_doubt' AND marked_at IS NOT NULL AND lease_owner = ?))"


def record_attempts(
    conn: sqlite3.Connection, results: Sequence[AttemptResult], owner: str | None = None
) -> None:
    """Apply attempt results; each also becomes an ``attempt`` history line."""
    conn.executemany(
        "UPDATE notifications SET state = ?, attempts = attempts + ?, updated_at = ?, "
        "next_attempt_at = ?, provider_id = COALESCE(?, provider_id), reason = ?, "
        "failure_class = ?, deadline_at = CASE WHEN ? = 'sent' AND within IS NOT NULL "
        f"THEN ? + within ELSE deadline_at END, {_UNLEASED} WHERE id = ? AND {_ANSWERED}",
        (
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
        ),
    )
    add_history(conn, ((r.notification_id, r.at, "attempt", _attempt_detail(r)) for r in results))


def requeue(
    conn: sqlite3.Connection,
    items: Sequence[tuple[int, float]],
    now: float,
    owner: str | None = None,
) -> None:
    """Leased rows go back to ``queued``, due at the paired time; no attempt is counted."""
    conn.executemany(
        f"UPDATE notifications SET state = 'queued', next_attempt_at = ?, updated_at = ?, "
        f"{_UNLEASED} WHERE id = ? AND {_HELD}",
        ((due, now, nid, owner, owner) for nid, due in items),
    )


def mark_sending(
    conn: sqlite3.Connection, ids: Sequence[int], now: float, owner: str | None = None
) -> list[int]:
    """Mark leased rows whose request is about to be written; returns the ids marked (a row
    whose lease was recovered by another worker is not: it must not be sent)."""
    marked: list[int] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = conn.execute(
            f"UPDATE notifications SET marked_at = ? WHERE id IN ({placeholders(len(chunk))}) "
            f"AND {_HELD} RETURNING id",
            (now, *chunk, owner, owner),
        ).fetchall()
        marked.extend(row[0] for row in rows)
    return marked


def renew_leases(conn: sqlite3.Connection, owner: str, until: float) -> int:
    """Extend every lease ``owner`` holds to ``until``; returns how many rows it holds."""
    return conn.execute(
        "UPDATE notifications SET lease_until = ? WHERE state = 'sending' AND lease_owner = ?",
        (until, owner),
    ).rowcount


def recover(conn: sqlite3.Connection, now: float, gone: Sequence[str] | None) -> Recovered:
    """Rows left ``sending`` whose lease ran out or whose owner is in ``gone`` (None: every
    ``sending`` row): marked ones may have reached the provider and become ``in_doubt``, the
    others are queued again as they were due."""
    if gone is None:
        scope, params = "", []
    else:
        owners = placeholders(len(gone)) if gone else "NULL"
        scope = (
            " AND (lease_until IS NULL OR lease_until <= ? OR lease_owner IS NULL "
            f"OR lease_owner IN ({owners}))"
        )
        params = [now, *gone]
    doubt = conn.execute(
        "UPDATE notifications SET state = 'in_doubt', reason = ?, updated_at = ?, "
        "next_attempt_at = NULL, lease_until = NULL WHERE state = 'sending' "
        f"AND marked_at IS NOT NULL{scope} RETURNING id",
        (INTERRUPTED_REASON, now, *params),
    ).fetchall()
    detail = {"state": "in_doubt", "reason": INTERRUPTED_REASON}
    add_history(conn, ((row[0], now, "state", detail) for row in doubt))
    again = conn.execute(
        "UPDATE notifications SET state = 'queued', updated_at = ?, "
        f"next_attempt_at = COALESCE(next_attempt_at, ?), {_UNLEASED} WHERE state = 'sending' "
        f"AND marked_at IS NULL{scope} RETURNING id",
        (now, now, *params),
    ).fetchall()
    again_detail = {"state": "queued", "reason": LEASE_LOST_REASON}
    add_history(conn, ((row[0], now, "state", again_detail) for row in again))
    return Recovered(sorted(row[0] for row in doubt), sorted(row[0] for row in again))


def release(conn: sqlite3.Connection, notification_id: int, now: float) -> bool:
    """An in-doubt notification is queued again, due now."""
    row = conn.execute(
        "UPDATE notifications SET state = 'queued', next_attempt_at = ?, updated_at = ?, "
        "reason = '' WHERE id = ? AND state = 'in_doubt' RETURNING id",
        (now, now, notification_id),
    ).fetchone()
    if row is None:
        return False
    detail = {"state": "queued", "from": "in_doubt", "by": "operator"}
    add_history(conn, [(notification_id, now, "state", detail)])
    return True


def cancel(conn: sqlite3.Connection, notification_id: int, now: float, reason: str) -> bool:
    """A queued or in-doubt notification is cancelled (one being sent cannot be)."""
    row = conn.execute(
        "UPDATE notifications SET state = 'cancelled', reason = ?, updated_at = ?, "
        "next_attempt_at = NULL WHERE id = ? AND state IN ('queued', 'in_doubt') RETURNING id",
        (reason, now, notification_id),
    ).fetchone()
    if row is None:
        return False
    add_history(conn, [(notification_id, now, "state", {"state": "cancelled", "reason": reason})])
    return True
