"""The web console's reads on the PostgreSQL ledger (see :class:`ledger.reads.ConsoleReads`).

Functions take a connection of :meth:`PostgresStore.reading` (``decide``: a write transaction);
:class:`PostgresConsoleReads` gives the store the methods. The counts are one statement (one
snapshot); a trace is several, each consistent. Each read is shaped for an index of migration
``0008_console_reads`` so that it stays fast on a ledger of a million notifications
(bench/console.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from nextstep.engine.ledger.base import Notification
from nextstep.engine.ledger.codec import loads
from nextstep.engine.ledger.postgres import send
from nextstep.engine.ledger.postgres.read import get, history
from nextstep.engine.ledger.postgres.sql import Conn, add_history
from nextstep.engine.ledger.postgres.transaction import PostgresTransaction
from nextstep.engine.ledger.reads import (
    DELIVERED,
    MEDIAN_SAMPLE,
    PHONE_TAIL,
    Counts,
    Cursor,
    Decision,
    Filters,
    PeriodCount,
    Relative,
    Trace,
    chain,
    reason_kind,
)
from nextstep.engine.ledger.rows import BY_DEDUPE_KEY, COLUMNS, to_notification

# States per rule from the covering (rule, created, state) index (an index-only scan), and skip
# reasons from the partial notifications_skipped index; duplicates, the usual reason, counted
# together in SQL (reason_kind does the rest).
_COUNTS = """
SELECT false, rule_id, floor(created_at / %(width)s)::bigint AS p, state, count(*)
FROM notifications
WHERE rule_id = ANY(%(rules)s::text[] || ARRAY(SELECT DISTINCT rule_id FROM rule_versions))
  AND created_at >= %(since)s AND created_at < %(until)s
GROUP BY rule_id, p, state
UNION ALL
SELECT true, rule_id, floor(created_at / %(width)s)::bigint AS p,
       CASE WHEN reason LIKE 'duplicate of #%%' THEN 'duplicate of #…' ELSE reason END AS kind,
       count(*)
FROM notifications
WHERE state = 'skipped' AND created_at >= %(since)s AND created_at < %(until)s
GROUP BY rule_id, p, kind
"""
# The newest delivered notifications of each rule with their acks (the first delivered one is
# picked in Python: history details are JSON text).
_ACKS = """
SELECT n.rule_id, n.id, n.created_at, h.at, h.detail
FROM unnest(%(rules)s::text[]) AS r(rule_id)
CROSS JOIN LATERAL (
    SELECT id, rule_id, created_at FROM notifications
    WHERE rule_id = r.rule_id AND created_at >= %(since)s AND state IN ('delivered', 'read')
    ORDER BY created_at DESC LIMIT %(sample)s
) AS n
JOIN history h ON h.notification_id = n.id AND h.kind = 'ack'
"""


def period_counts(
    conn: Conn, rule_ids: Sequence[str], since: float, until: float | None, width: float
) -> Counts:
    """Notifications created in the span per rule, period and state (see ConsoleReads)."""
    params = {
        "width": float(width),
        "rules": list(rule_ids),
        "since": float(since),
        "until": float("inf") if until is None else float(until),
    }
    states: list[PeriodCount] = []
    kinds: dict[tuple[str, int, str], int] = {}
    for skipped, rule_id, period, key, n in conn.execute(_COUNTS, params):
        if skipped:
            found = (rule_id, int(period), reason_kind(key))
            kinds[found] = kinds.get(found, 0) + int(n)
        else:
            states.append((rule_id, int(period), key, int(n)))
    return Counts(tuple(states), tuple((*key, n) for key, n in kinds.items()))


def times_to_delivered(conn: Conn, rule_ids: Sequence[str], since: float) -> dict[str, float]:
    """Per rule, the median time to the first delivered ack (see ConsoleReads)."""
    if not rule_ids:
        return {}
    params = {"rules": list(rule_ids), "since": float(since), "sample": MEDIAN_SAMPLE}
    first: dict[tuple[str, int], float] = {}
    for rule_id, nid, created_at, at, detail in conn.execute(_ACKS, params):
        seconds, key = at - created_at, (rule_id, nid)
        if loads(detail).get("status") in DELIVERED and seconds < first.get(key, math.inf):
            first[key] = seconds
    times: dict[str, list[float]] = {}
    for (rule_id, _), seconds in first.items():
        times.setdefault(rule_id, []).append(seconds)
    return {rule_id: statistics.median(found) for rule_id, found in times.items()}


def _where(filters: Filters, after: Cursor | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    equal = (
        ("rule_id", filters.rule_id),
        ("state", filters.state),
        ("provider_id", filters.provider_id),
    )
    for column, value in equal:
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if filters.dedupe_key is not None:
        clauses.append(BY_DEDUPE_KEY.replace("?", "%s"))
        params += [filters.dedupe_key] * 2
    tail = filters.phone_tail
    if tail is not None and len(tail) >= PHONE_TAIL:
        # The expression of the recipient_tail index, then the whole tail.
        clauses += ["right(recipient, 4) = %s", "right(recipient, %s) = %s"]
        params += [tail[-PHONE_TAIL:], len(tail), tail]
    if filters.since is not None:
        clauses.append("created_at >= %s")
        params.append(float(filters.since))
    if filters.until is not None:
        clauses.append("created_at < %s")
        params.append(float(filters.until))
    if after is not None:
        clauses.append("(created_at, id) < (%s, %s)")
        params += [float(after.created_at), after.id]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def browse(conn: Conn, filters: Filters, after: Cursor | None, limit: int) -> list[Notification]:
    """Notifications matching ``filters``, newest first, after ``after`` (keyset paging)."""
    where, params = _where(filters, after)
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications{where} ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit),
    ).fetchall()
    return [to_notification(row) for row in rows]


def _relative(conn: Conn, notification_id: int) -> Relative | None:
    row = conn.execute(
        "SELECT id, state, channel, fallback_step, parent_id FROM notifications WHERE id = %s",
        (notification_id,),
    ).fetchone()
    return None if row is None else Relative(*row)


def _children(conn: Conn, notification_id: int) -> list[int]:
    # The fallback history lines name the children: no index on parent_id is needed.
    rows = conn.execute(
        "SELECT detail FROM history WHERE notification_id = %s AND kind = 'fallback' ORDER BY id",
        (notification_id,),
    ).fetchall()
    found = (loads(row[0]).get("child") for row in rows)
    return [child for child in found if isinstance(child, int)]


def trace(conn: Conn, notification_id: int) -> Trace | None:
    """One notification, its history and its fallback chain."""
    found = get(conn, notification_id)
    if found is None:
        return None
    line = chain(notification_id, lambda i: _relative(conn, i), lambda i: _children(conn, i))
    return Trace(found, history(conn, notification_id), line)


def in_doubt(conn: Conn, limit: int) -> list[Notification]:
    """Notifications in doubt, oldest first."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE state = 'in_doubt' ORDER BY id LIMIT %s",
        (limit,),
    ).fetchall()
    return [to_notification(row) for row in rows]


def rule_versions(conn: Conn, rule_id: str) -> dict[str, Mapping[str, Any]]:
    """Every kept definition of ``rule_id`` by version."""
    rows = conn.execute(
        "SELECT version, definition FROM rule_versions WHERE rule_id = %s", (rule_id,)
    ).fetchall()
    return {row[0]: loads(row[1]) for row in rows}


def decide(conn: Conn, notification_id: int, decision: Decision) -> bool:
    """Carry out an operator's decision; its history line says who and why."""
    if decision.action == "release":
        done = send.release(conn, notification_id, decision.at)
    else:
        reason = decision.reason or "cancelled by operator"
        done = send.cancel(conn, notification_id, decision.at, reason)
    if done:
        add_history(conn, [(notification_id, decision.at, "note", decision.detail())])
    return done


class PostgresConsoleReads:
    """:class:`ConsoleReads` for :class:`PostgresStore`, which mixes it in."""

    def reading(self) -> AbstractContextManager[PostgresTransaction]:
        """A connection for reads (the store's)."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[PostgresTransaction]:
        """A write transaction (the store's)."""
        raise NotImplementedError

    def period_counts(
        self, rule_ids: Sequence[str], since: float, until: float | None, width: float
    ) -> Counts:
        """Notifications created in the span per rule, period and state (ConsoleReads)."""
        with self.reading() as tx:
            return period_counts(tx.connection, rule_ids, since, until, width)

    def times_to_delivered(self, rule_ids: Sequence[str], since: float) -> dict[str, float]:
        """Per rule, the median time to the first delivered ack (ConsoleReads)."""
        with self.reading() as tx:
            return times_to_delivered(tx.connection, rule_ids, since)

    def browse(self, filters: Filters, after: Cursor | None, limit: int) -> list[Notification]:
        """Notifications matching ``filters``, newest first (keyset paging)."""
        with self.reading() as tx:
            return browse(tx.connection, filters, after, limit)

    def trace(self, notification_id: int) -> Trace | None:
        """One notification, its history and its fallback chain."""
        with self.reading() as tx:
            return trace(tx.connection, notification_id)

    def in_doubt(self, limit: int) -> list[Notification]:
        """Notifications in doubt, oldest first."""
        with self.reading() as tx:
            return in_doubt(tx.connection, limit)

    def rule_versions(self, rule_id: str) -> dict[str, Mapping[str, Any]]:
        """Every kept definition of a rule, by version."""
        with self.reading() as tx:
            return rule_versions(tx.connection, rule_id)

    def decide(self, notification_id: int, decision: Decision) -> bool:
        """Release or cancel with a history line naming who and why."""
        with self.transaction() as tx:
            return decide(tx.connection, notification_id, decision)
