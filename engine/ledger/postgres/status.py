"""Status tracking against the PostgreSQL ledger: acks, kept acks, expiry, settling, polling.

Functions take the connection of an open transaction; the decisions they carry out are made by
:mod:`delivery.statemachine` and :mod:`delivery.policy`. Every change is a compare-and-set on
the row's state (or ``settled_at``), so two processes never both act on one notification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nextstep.engine.ledger.base import KeptAck, Move, Notification, PollCandidate, Tracked
from nextstep.engine.ledger.codec import dumps, loads
from nextstep.engine.ledger.postgres.sql import Conn, add_history, columns, unique
from nextstep.engine.ledger.rows import COLUMNS, to_notification
from nextstep.engine.model import State


def _notifications(conn: Conn, sql: str, params: Sequence[Any]) -> list[Notification]:
    return [to_notification(row) for row in conn.execute(sql, params).fetchall()]


def tracked_by_provider(conn: Conn, provider_ids: Sequence[str]) -> dict[str, Tracked]:
    """The notification each provider message id belongs to (the newest, should two share it)."""
    rows = conn.execute(
        "SELECT id, provider_id, state, rule_id FROM notifications "
        "WHERE provider_id = ANY(%b::text[]) ORDER BY id",
        (list(dict.fromkeys(provider_ids)),),
    ).fetchall()
    return {row[1]: Tracked(row[0], row[1], State(row[2]), row[3]) for row in rows}


def set_states(conn: Conn, moves: Sequence[Move], now: float) -> None:
    """Move notifications ``(id, from, to)``; a row no longer in ``from`` is left alone."""
    if not moves:
        return
    if unique([nid for nid, _, _ in moves]):
        conn.execute(
            "UPDATE notifications t SET state = m.new, updated_at = %s "
            "FROM unnest(%b::bigint[], %b::text[], %b::text[]) AS m(id, old, new) "
            "WHERE t.id = m.id AND t.state = m.old",
            (now, *columns([(nid, old.value, new.value) for nid, old, new in moves], 3)),
        )
        return
    with conn.cursor() as cursor:  # one row moved twice: in order, each seeing the last
        cursor.executemany(
            "UPDATE notifications SET state = %s, updated_at = %s WHERE id = %s AND state = %s",
            [(new.value, now, nid, old.value) for nid, old, new in moves],
        )


def keep_pending(
    conn: Conn, acks: Sequence[tuple[str, str, Mapping[str, Any]]], now: float
) -> None:
    """Keep acks ``(provider_id, status, payload)`` for ids no notification has (yet)."""
    if not acks:
        return
    conn.execute(
        "INSERT INTO acks (provider_id, status, payload, received_at, applied) "
        "SELECT p, s, d, %s, 0 FROM unnest(%b::text[], %b::text[], %b::text[]) "
        "WITH ORDINALITY AS a(p, s, d, n) ORDER BY n",
        (now, *columns([(pid, status, dumps(doc)) for pid, status, doc in acks], 3)),
    )


def pending_for(conn: Conn, *, ids: Sequence[int] | None, received_since: float) -> list[KeptAck]:
    """Kept acks whose notification now has their provider id, oldest first (see the
    transaction's ``kept_acks_for``)."""
    join = (
        "SELECT a.id, a.payload FROM acks a JOIN notifications n "
        "ON n.provider_id = a.provider_id WHERE a.applied = 0"
    )
    if ids is not None:
        rows = conn.execute(
            f"{join} AND n.id = ANY(%b::bigint[]) ORDER BY a.id", (list(ids),)
        ).fetchall()
    else:
        rows = conn.execute(
            f"{join} AND a.received_at >= %s ORDER BY a.id", (received_since,)
        ).fetchall()
    return [KeptAck(row[0], loads(row[1])) for row in rows]


def mark_applied(conn: Conn, ack_ids: Sequence[int]) -> None:
    """Kept acks that have now been applied to their notification."""
    if ack_ids:
        conn.execute("UPDATE acks SET applied = 1 WHERE id = ANY(%b::bigint[])", (list(ack_ids),))


def kept_count(conn: Conn) -> int:
    """Kept acks not applied (yet)."""
    row = conn.execute("SELECT count(*) FROM acks WHERE applied = 0").fetchone()
    return 0 if row is None else int(row[0])


def conclude(
    conn: Conn,
    notification_id: int,
    *,
    old: State,
    new: State,
    reason: str,
    failure_class: str | None,
    now: float,
) -> bool:
    """Move a notification to a terminal state and mark it settled, if still in ``old``."""
    row = conn.execute(
        "UPDATE notifications SET state = %s, reason = %s, failure_class = %s, updated_at = %s, "
        "next_attempt_at = NULL, settled_at = %s WHERE id = %s AND state = %s RETURNING id",
        (new.value, reason, failure_class, now, now, notification_id, old.value),
    ).fetchone()
    return row is not None


def retry_later(
    conn: Conn,
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
        "UPDATE notifications SET state = 'queued', next_attempt_at = %s, reason = %s, "
        "failure_class = %s, updated_at = %s, deadline_at = NULL WHERE id = %s AND state = %s "
        "RETURNING id",
        (due, reason, failure_class, now, notification_id, old.value),
    ).fetchone()
    return row is not None


def stale_queued(conn: Conn, now: float, limit: int) -> list[Notification]:
    """Queued notifications whose ``valid_until`` has passed (not yet expired by a lease)."""
    return _notifications(
        conn,
        f"SELECT {COLUMNS} FROM notifications WHERE state = 'queued' "
        "AND valid_until IS NOT NULL AND valid_until <= %s ORDER BY valid_until LIMIT %s",
        (now, limit),
    )


def overdue(conn: Conn, now: float, limit: int) -> list[Notification]:
    """Sent or delivered notifications past their ``within`` deadline that expected more."""
    return _notifications(
        conn,
        f"SELECT {COLUMNS} FROM notifications WHERE deadline_at IS NOT NULL "
        "AND deadline_at <= %s AND state IN ('sent', 'delivered') "
        "AND ((state = 'sent' AND expect IN ('delivered', 'read')) "
        "OR (state = 'delivered' AND expect = 'read')) ORDER BY deadline_at LIMIT %s",
        (now, limit),
    )


def unsettled(conn: Conn, *, ids: Sequence[int] | None, limit: int) -> list[Notification]:
    """Failed or expired notifications whose fallback has not been decided yet."""
    base = (
        f"SELECT {COLUMNS} FROM notifications WHERE state IN ('failed', 'expired') "
        "AND settled_at IS NULL"
    )
    if ids is None:
        return _notifications(conn, base + " ORDER BY id LIMIT %s", (limit,))
    return _notifications(conn, base + " AND id = ANY(%b::bigint[]) ORDER BY id", (list(ids),))


def retries_among(conn: Conn, ids: Sequence[int]) -> list[Notification]:
    """Those of ``ids`` queued again after a failed attempt (a retry waiting for its time)."""
    return _notifications(
        conn,
        f"SELECT {COLUMNS} FROM notifications WHERE state = 'queued' AND attempts > 0 "
        "AND next_attempt_at IS NOT NULL AND id = ANY(%b::bigint[]) ORDER BY id",
        (list(ids),),
    )


def retries_due(conn: Conn, until: float, limit: int) -> list[Notification]:
    """Retries (queued after a failed attempt) due by ``until``."""
    return _notifications(
        conn,
        f"SELECT {COLUMNS} FROM notifications WHERE state = 'queued' AND next_attempt_at <= %s "
        "AND attempts > 0 ORDER BY next_attempt_at, id LIMIT %s",
        (until, limit),
    )


def reschedule(conn: Conn, notification_id: int, due: float) -> bool:
    """Move a queued notification's next attempt to ``due``."""
    row = conn.execute(
        "UPDATE notifications SET next_attempt_at = %s WHERE id = %s AND state = 'queued' "
        "RETURNING id",
        (due, notification_id),
    ).fetchone()
    return row is not None


def last_code(conn: Conn, notification_id: int) -> int | None:
    """The provider's error code in the notification's last attempt or ack, if it had one."""
    row = conn.execute(
        "SELECT detail FROM history WHERE notification_id = %s AND kind IN ('attempt', 'ack') "
        "ORDER BY id DESC LIMIT 1",
        (notification_id,),
    ).fetchone()
    if row is None:
        return None
    detail = loads(row[0])
    source = detail.get("outcome", detail) if isinstance(detail, dict) else None
    code = source.get("code") if isinstance(source, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def mark_settled(conn: Conn, notification_id: int, now: float) -> bool:
    """Claim handling the notification's failure (its fallback); False when already settled."""
    row = conn.execute(
        "UPDATE notifications SET settled_at = %s WHERE id = %s AND settled_at IS NULL "
        "RETURNING id",
        (now, notification_id),
    ).fetchone()
    return row is not None


def poll_candidates(
    conn: Conn,
    *,
    channels: Sequence[str],
    silent_since: float,
    polled_before: float,
    oldest: float,
    limit: int,
) -> list[PollCandidate]:
    """Messages still only ``sent`` (or ``delivered`` when ``read`` is expected) to ask their
    channel about; least recently polled first."""
    if not channels:
        return []
    rows = conn.execute(
        "SELECT id, channel, provider_id FROM notifications "
        # Every row whose expectation is not met yet (issue 15.5): `sent`, and `delivered`
        # when the rule waits for `read` (its read ack may have been lost).
        "WHERE (state = 'sent' OR (state = 'delivered' AND expect = 'read')) "
        "AND provider_id IS NOT NULL AND updated_at <= %s AND updated_at >= %s "
        "AND channel = ANY(%b::text[]) AND (polled_at IS NULL OR polled_at <= %s) "
        # Another worker polling at the same moment takes other rows (claimed by the caller).
        "ORDER BY COALESCE(polled_at, 0), id LIMIT %s FOR UPDATE SKIP LOCKED",
        (silent_since, oldest, list(channels), polled_before, limit),
    ).fetchall()
    return [PollCandidate(row[0], row[1], row[2]) for row in rows]


def mark_polled(conn: Conn, ids: Sequence[int], now: float) -> None:
    """Remember when these notifications were last asked about."""
    if ids:
        conn.execute(
            "UPDATE notifications SET polled_at = %s WHERE id = ANY(%b::bigint[])",
            (now, list(ids)),
        )


def resolve_in_doubt(
    conn: Conn,
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
            "UPDATE notifications SET state = 'sent', provider_id = %s, updated_at = %s, "
            "reason = '', failure_class = NULL, next_attempt_at = NULL, "
            "deadline_at = CASE WHEN within IS NOT NULL THEN %s + within ELSE deadline_at END "
            "WHERE id = %s AND state = 'in_doubt' RETURNING id",
            (provider_id, now, now, notification_id),
        ).fetchone()
    else:
        row = conn.execute(
            "UPDATE notifications SET state = 'queued', next_attempt_at = %s, updated_at = %s, "
            "reason = '' WHERE id = %s AND state = 'in_doubt' RETURNING id",
            (now, now, notification_id),
        ).fetchone()
    if row is None:
        return False
    state = "queued" if provider_id is None else "sent"
    line = {"state": state, "from": "in_doubt", **detail}
    add_history(conn, [(notification_id, now, "state", line)])
    return True
