"""Status tracking against the SQLite ledger: acks, pending acks, expiry, settling, polling.

Functions take the connection of an open transaction (:class:`SqliteTransaction` calls them);
the decisions they carry out are made by :mod:`delivery.statemachine` and :mod:`delivery.policy`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nextstep.engine.ledger.base import KeptAck, Notification, PollCandidate, Tracked
from nextstep.engine.ledger.codec import dumps, loads
from nextstep.engine.ledger.sqlite.rows import COLUMNS, add_history, placeholders, to_notification
from nextstep.engine.model import State

# SQLite allows 32766 bound parameters; stay well below for IN (…) lists.
_CHUNK = 500


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def tracked_by_provider(
    conn: sqlite3.Connection, provider_ids: Sequence[str]
) -> dict[str, Tracked]:
    """The notification each provider message id belongs to (the newest, should two share it)."""
    found: dict[str, Tracked] = {}
    unique = list(dict.fromkeys(provider_ids))
    for chunk in _chunks(unique):
        rows = conn.execute(
            f"SELECT id, provider_id, state, rule_id FROM notifications "
            f"WHERE provider_id IN ({placeholders(len(chunk))}) ORDER BY id",
            chunk,
        ).fetchall()
        for row in rows:
            found[row[1]] = Tracked(row[0], row[1], State(row[2]), row[3])
    return found


def set_states(
    conn: sqlite3.Connection, moves: Sequence[tuple[int, State, State]], now: float
) -> None:
    """Move notifications ``(id, from, to)``; a row no longer in ``from`` is left alone."""
    conn.executemany(
        "UPDATE notifications SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
        ((to.value, now, nid, old.value) for nid, old, to in moves),
    )


def keep_pending(
    conn: sqlite3.Connection, acks: Sequence[tuple[str, str, Mapping[str, Any]]], now: float
) -> None:
    """Keep acks ``(provider_id, status, payload)`` for ids no notification has (yet); they are
    applied when the send is recorded."""
    conn.executemany(
        "INSERT INTO acks (provider_id, status, payload, received_at, applied) "
        "VALUES (?, ?, ?, ?, 0)",
        ((pid, status, dumps(payload), now) for pid, status, payload in acks),
    )


def pending_for(
    conn: sqlite3.Connection, *, ids: Sequence[int] | None, received_since: float
) -> list[KeptAck]:
    """Kept acks whose notification now has their provider id, oldest first. Only
    notifications of ``ids``, or else acks received since ``received_since``, are looked at,
    so old acks that will never match (another system's messages on the same channel) cost
    nothing."""
    join = (
        "SELECT a.id, a.payload FROM acks a JOIN notifications n "
        "ON n.provider_id = a.provider_id WHERE a.applied = 0"
    )
    rows: list[Any] = []
    if ids is not None:
        for chunk in _chunks(list(ids)):
            rows += conn.execute(
                f"{join} AND n.id IN ({placeholders(len(chunk))})", chunk
            ).fetchall()
    else:
        rows = conn.execute(f"{join} AND a.received_at >= ?", (received_since,)).fetchall()
    rows.sort(key=lambda row: row[0])
    return [KeptAck(row[0], loads(row[1])) for row in rows]


def kept_count(conn: sqlite3.Connection) -> int:
    """Kept acks not applied (yet)."""
    return int(conn.execute("SELECT COUNT(*) FROM acks WHERE applied = 0").fetchone()[0])


def mark_applied(conn: sqlite3.Connection, ack_ids: Sequence[int]) -> None:
    """Kept acks that have now been applied to their notification."""
    conn.executemany("UPDATE acks SET applied = 1 WHERE id = ?", ((i,) for i in ack_ids))


def full(conn: sqlite3.Connection, notification_id: int) -> Notification | None:
    """The whole row, for the rare decisions that need it (a failure, a fallback)."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
    ).fetchone()
    return None if row is None else to_notification(row)


def conclude(
    conn: sqlite3.Connection,
    notification_id: int,
    *,
    old: State,
    new: State,
    reason: str,
    failure_class: str | None,
    now: float,
) -> bool:
    """Move a notification to a terminal state and mark it settled, in one statement.

    False when it was no longer in ``old`` (someone else moved it first).
    """
    row = conn.execute(
        "UPDATE notifications SET state = ?, reason = ?, failure_class = ?, updated_at = ?, "
        "next_attempt_at = NULL, settled_at = ? WHERE id = ? AND state = ? RETURNING id",
        (new.value, reason, failure_class, now, now, notification_id, old.value),
    ).fetchone()
    return row is not None


def retry_later(
    conn: sqlite3.Connection,
    notification_id: int,
    *,
    old: State,
    due: float,
    reason: str,
    failure_class: str,
    now: float,
) -> bool:
    """Queue a notification again (a failed ack with a transient cause), due at ``due``."""
    row = conn.execute(
        "UPDATE notifications SET state = 'queued', next_attempt_at = ?, reason = ?, "
        "failure_class = ?, updated_at = ?, deadline_at = NULL WHERE id = ? AND state = ? "
        "RETURNING id",
        (due, reason, failure_class, now, notification_id, old.value),
    ).fetchone()
    return row is not None


def stale_queued(conn: sqlite3.Connection, now: float, limit: int) -> list[Notification]:
    """Queued notifications whose ``valid_until`` has passed (not yet expired by a lease)."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE state = 'queued' "
        "AND valid_until IS NOT NULL AND valid_until <= ? ORDER BY valid_until LIMIT ?",
        (now, limit),
    ).fetchall()
    return [to_notification(row) for row in rows]


def overdue(conn: sqlite3.Connection, now: float, limit: int) -> list[Notification]:
    """Sent or delivered notifications past their ``within`` deadline that expected more."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE deadline_at IS NOT NULL AND deadline_at <= ? "
        "AND state IN ('sent', 'delivered') "
        "AND ((state = 'sent' AND expect IN ('delivered', 'read')) "
        "OR (state = 'delivered' AND expect = 'read')) ORDER BY deadline_at LIMIT ?",
        (now, limit),
    ).fetchall()
    return [to_notification(row) for row in rows]


def unsettled(
    conn: sqlite3.Connection, *, ids: Sequence[int] | None, limit: int
) -> list[Notification]:
    """Failed or expired notifications whose fallback has not been decided yet."""
    base = (
        f"SELECT {COLUMNS} FROM notifications WHERE state IN ('failed', 'expired') "
        "AND settled_at IS NULL"
    )
    if ids is None:
        rows = conn.execute(base + " ORDER BY id LIMIT ?", (limit,)).fetchall()
    else:
        rows = []
        for chunk in _chunks(list(ids)):
            rows += conn.execute(
                base + f" AND id IN ({placeholders(len(chunk))})", chunk
            ).fetchall()
    return [to_notification(row) for row in rows]


def retries_among(conn: sqlite3.Connection, ids: Sequence[int]) -> list[Notification]:
    """Those of ``ids`` queued again after a failed attempt (a retry waiting for its time)."""
    rows: list[Any] = []
    for chunk in _chunks(list(ids)):
        rows += conn.execute(
            f"SELECT {COLUMNS} FROM notifications WHERE state = 'queued' AND attempts > 0 "
            f"AND next_attempt_at IS NOT NULL AND id IN ({placeholders(len(chunk))})",
            chunk,
        ).fetchall()
    return [to_notification(row) for row in rows]


def retries_due(conn: sqlite3.Connection, until: float, limit: int) -> list[Notification]:
    """Retries (queued after a failed attempt) due by ``until``."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE state = 'queued' AND next_attempt_at <= ? "
        "AND attempts > 0 ORDER BY next_attempt_at, id LIMIT ?",
        (until, limit),
    ).fetchall()
    return [to_notification(row) for row in rows]


def reschedule(conn: sqlite3.Connection, notification_id: int, due: float) -> bool:
    """Move a queued notification's next attempt to ``due``."""
    row = conn.execute(
        "UPDATE notifications SET next_attempt_at = ? WHERE id = ? AND state = 'queued' "
        "RETURNING id",
        (due, notification_id),
    ).fetchone()
    return row is not None


def last_code(conn: sqlite3.Connection, notification_id: int) -> int | None:
    """The provider's error code in the notification's last attempt or ack, if it had one."""
    row = conn.execute(
        "SELECT detail FROM history WHERE notification_id = ? AND kind IN ('attempt', 'ack') "
        "ORDER BY id DESC LIMIT 1",
        (notification_id,),
    ).fetchone()
    if row is None:
        return None
    detail = loads(row[0])
    source = detail.get("outcome", detail) if isinstance(detail, dict) else None
    code = source.get("code") if isinstance(source, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def mark_settled(conn: sqlite3.Connection, notification_id: int, now: float) -> bool:
    """Claim handling the notification's failure (its fallback); False when already settled."""
    row = conn.execute(
        "UPDATE notifications SET settled_at = ? WHERE id = ? AND settled_at IS NULL RETURNING id",
        (now, notification_id),
    ).fetchone()
    return row is not None


def poll_candidates(
    conn: sqlite3.Connection,
    *,
    channels: Sequence[str],
    silent_since: float,
    polled_before: float,
    oldest: float,
    limit: int,
) -> list[PollCandidate]:
    """Messages still only ``sent`` (or ``delivered`` when ``read`` is expected) since
    ``silent_since`` (and accepted after ``oldest``), not polled since ``polled_before``;
    least recently polled first."""
    if not channels:
        return []
    rows = conn.execute(
        "SELECT id, channel, provider_id FROM notifications "
        # Every row whose expectation is not met yet (issue 15.5): `sent`, and `delivered`
        # when the rule waits for `read` (its read ack may have been lost).
        "WHERE (state = 'sent' OR (state = 'delivered' AND expect = 'read')) "
        "AND provider_id IS NOT NULL AND updated_at <= ? AND updated_at >= ? "
        f"AND channel IN ({placeholders(len(channels))}) "
        "AND (polled_at IS NULL OR polled_at <= ?) ORDER BY COALESCE(polled_at, 0), id LIMIT ?",
        (silent_since, oldest, *channels, polled_before, limit),
    ).fetchall()
    return [PollCandidate(row[0], row[1], row[2]) for row in rows]


def mark_polled(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> None:
    """Remember when these notifications were last asked about."""
    conn.executemany("UPDATE notifications SET polled_at = ? WHERE id = ?", ((now, i) for i in ids))


def resolve_in_doubt(
    conn: sqlite3.Connection,
    notification_id: int,
    now: float,
    provider_id: str | None,
    detail: Mapping[str, Any],
) -> bool:
    """An in-doubt notification the provider's history settled: ``sent`` with the message id
    found, or (``provider_id`` None: not there) ``queued`` again, due now; with a history
    line. False when it is no longer in doubt."""
    if provider_id is not None:
        row = conn.execute(
            "UPDATE notifications SET state = 'sent', provider_id = ?, updated_at = ?, "
            "reason = '', failure_class = NULL, next_attempt_at = NULL, "
            "deadline_at = CASE WHEN within IS NOT NULL THEN ? + within ELSE deadline_at END "
            "WHERE id = ? AND state = 'in_doubt' RETURNING id",
            (provider_id, now, now, notification_id),
        ).fetchone()
    else:
        row = conn.execute(
            "UPDATE notifications SET state = 'queued', next_attempt_at = ?, updated_at = ?, "
            "reason = '' WHERE id = ? AND state = 'in_doubt' RETURNING id",
            (now, now, notification_id),
        ).fetchone()
    if row is None:
        return False
    state = "queued" if provider_id is None else "sent"
    line = {"state": state, "from": "in_doubt", **detail}
    add_history(conn, [(notification_id, now, "state", line)])
    return True
