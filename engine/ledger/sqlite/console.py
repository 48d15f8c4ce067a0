"""The web console's reads on the SQLite ledger (see :class:`ledger.reads.ConsoleReads`).

Functions take a connection inside :meth:`SqliteStore.reading` (``decide``: a write
transaction); :class:`SqliteConsoleReads` gives the store the methods. Each read is shaped for
an index of migration ``0006_console_reads`` so that it stays fast on a ledger of a million
notifications (bench/console.py).
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from nextstep.engine.ledger.base import Notification
from nextstep.engine.ledger.codec import loads
from nextstep.engine.ledger.reads import (
    MEDIAN_SAMPLE,
    PHONE_TAIL,
    Cursor,
    Decision,
    Filters,
    Relative,
    Tally,
    Trace,
    reason_kind,
)
from nextstep.engine.ledger.sqlite import send
from nextstep.engine.ledger.sqlite.read import get, history
from nextstep.engine.ledger.sqlite.rows import COLUMNS, add_history, to_notification
from nextstep.engine.ledger.sqlite.transaction import SqliteTransaction

_CHAIN_DEPTH = 20  # fallback chains end (each step only later ones); this bounds a bad row


def known_rules(conn: sqlite3.Connection) -> list[str]:
    """Every rule id the ledger keeps a version of."""
    return [row[0] for row in conn.execute("SELECT DISTINCT rule_id FROM rule_versions")]


def _states(
    conn: sqlite3.Connection, rule_id: str, since: float, until: float, buckets: int
) -> tuple[dict[str, int], tuple[int, ...]]:
    width = max(until - since, 1e-9) / buckets
    rows = conn.execute(
        "SELECT state, CAST((? - created_at) / ? AS INTEGER) AS b, COUNT(*) "
        "FROM notifications WHERE rule_id = ? AND created_at >= ? GROUP BY state, b",
        (until, width, rule_id, since),
    ).fetchall()
    states: dict[str, int] = {}
    trend = [0] * buckets
    for state, bucket, count in rows:
        states[state] = states.get(state, 0) + count
        trend[min(max(bucket, 0), buckets - 1)] += count
    return states, tuple(reversed(trend))


def _skip_reasons(conn: sqlite3.Connection, since: float) -> dict[str, dict[str, int]]:
    # Duplicates, the usual reason, are counted together in SQL; reason_kind does the rest.
    rows = conn.execute(
        "SELECT rule_id, CASE WHEN reason LIKE 'duplicate of #%' THEN 'duplicate of #…' "
        "ELSE reason END AS kind, COUNT(*) FROM notifications INDEXED BY notifications_skipped "
        "WHERE state = 'skipped' AND created_at >= ? GROUP BY rule_id, kind",
        (since,),
    ).fetchall()
    reasons: dict[str, dict[str, int]] = {}
    for rule_id, reason, count in rows:
        kinds = reasons.setdefault(rule_id, {})
        kind = reason_kind(reason)
        kinds[kind] = kinds.get(kind, 0) + count
    return reasons


def _to_delivered(conn: sqlite3.Connection, rule_id: str, since: float) -> float | None:
    rows = conn.execute(
        "SELECT (SELECT MIN(h.at) FROM history h WHERE h.notification_id = n.id "
        "AND h.kind = 'ack' AND json_extract(h.detail, '$.status') IN ('delivered', 'read')) "
        "- n.created_at FROM notifications n WHERE n.rule_id = ? AND n.created_at >= ? "
        "AND n.state IN ('delivered', 'read') ORDER BY n.created_at DESC LIMIT ?",
        (rule_id, since, MEDIAN_SAMPLE),
    ).fetchall()
    times = [row[0] for row in rows if row[0] is not None]
    return statistics.median(times) if times else None


def overview(
    conn: sqlite3.Connection, rule_ids: Sequence[str], since: float, until: float, buckets: int
) -> list[Tally]:
    """Per rule: states, skip reasons, trend and median time to delivered (see ConsoleReads)."""
    skipped = _skip_reasons(conn, since)
    tallies = []
    for rule_id in sorted({*rule_ids, *known_rules(conn)}):
        states, trend = _states(conn, rule_id, since, until, buckets)
        if not states and rule_id not in rule_ids:
            continue
        delivered = states.get("delivered", 0) + states.get("read", 0)
        median = _to_delivered(conn, rule_id, since) if delivered else None
        tallies.append(Tally(rule_id, states, skipped.get(rule_id, {}), trend, median))
    return tallies


def _where(filters: Filters, after: Cursor | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    equal = (
        ("rule_id", filters.rule_id),
        ("state", filters.state),
        ("dedupe_key", filters.dedupe_key),
        ("provider_id", filters.provider_id),
    )
    for column, value in equal:
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    tail = filters.phone_tail
    if tail is not None and len(tail) >= PHONE_TAIL:
        # The expression of the recipient_tail index, then the whole tail.
        clauses += ["substr(recipient, -4) = ?", "substr(recipient, ?) = ?"]
        params += [tail[-PHONE_TAIL:], -len(tail), tail]
    if filters.since is not None:
        clauses.append("created_at >= ?")
        params.append(filters.since)
    if filters.until is not None:
        clauses.append("created_at < ?")
        params.append(filters.until)
    if after is not None:
        clauses.append("(created_at, id) < (?, ?)")
        params += [after.created_at, after.id]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def browse(
    conn: sqlite3.Connection, filters: Filters, after: Cursor | None, limit: int
) -> list[Notification]:
    """Notifications matching ``filters``, newest first, after ``after`` (keyset paging)."""
    where, params = _where(filters, after)
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications{where} ORDER BY created_at DESC, id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [to_notification(row) for row in rows]


def _relative(conn: sqlite3.Connection, notification_id: int) -> Relative | None:
    row = conn.execute(
        "SELECT id, state, channel, fallback_step, parent_id FROM notifications WHERE id = ?",
        (notification_id,),
    ).fetchone()
    return None if row is None else Relative(*row)


def _children(conn: sqlite3.Connection, notification_id: int) -> list[int]:
    # The fallback history lines name the children: no index on parent_id is needed.
    rows = conn.execute(
        "SELECT detail FROM history WHERE notification_id = ? AND kind = 'fallback' ORDER BY id",
        (notification_id,),
    ).fetchall()
    found = (loads(row[0]).get("child") for row in rows)
    return [child for child in found if isinstance(child, int)]


def chain(conn: sqlite3.Connection, notification_id: int) -> list[Relative]:
    """The fallback chain through a notification: its ancestors, itself, its descendants."""
    line: list[Relative] = []
    current = _relative(conn, notification_id)
    while current is not None and len(line) < _CHAIN_DEPTH:
        line.insert(0, current)
        current = None if current.parent_id is None else _relative(conn, current.parent_id)
    pending = _children(conn, notification_id)
    while pending and len(line) < 2 * _CHAIN_DEPTH:
        child = _relative(conn, pending.pop(0))
        if child is not None:
            line.append(child)
            pending += _children(conn, child.id)
    return line


def trace(conn: sqlite3.Connection, notification_id: int) -> Trace | None:
    """One notification, its history and its fallback chain."""
    found = get(conn, notification_id)
    if found is None:
        return None
    return Trace(found, history(conn, notification_id), chain(conn, notification_id))


def in_doubt(conn: sqlite3.Connection, limit: int) -> list[Notification]:
    """Notifications in doubt, oldest first."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE state = 'in_doubt' ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [to_notification(row) for row in rows]


def rule_versions(conn: sqlite3.Connection, rule_id: str) -> dict[str, Mapping[str, Any]]:
    """Every kept definition of ``rule_id`` by version."""
    rows = conn.execute(
        "SELECT version, definition FROM rule_versions WHERE rule_id = ?", (rule_id,)
    ).fetchall()
    return {row[0]: loads(row[1]) for row in rows}


def decide(conn: sqlite3.Connection, notification_id: int, decision: Decision) -> bool:
    """Carry out an operator's decision; its history line says who and why."""
    if decision.action == "release":
        done = send.release(conn, notification_id, decision.at)
    else:
        reason = decision.reason or "cancelled by operator"
        done = send.cancel(conn, notification_id, decision.at, reason)
    if done:
        add_history(conn, [(notification_id, decision.at, "note", decision.detail())])
    return done


class SqliteConsoleReads:
    """:class:`ConsoleReads` for :class:`SqliteStore`, which mixes it in: each method is one
    consistent read (``decide``: one write transaction) of the store."""

    def reading(self) -> AbstractContextManager[SqliteTransaction]:
        """A consistent read (the store's)."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[SqliteTransaction]:
        """A write transaction (the store's)."""
        raise NotImplementedError

    def overview(
        self, rule_ids: Sequence[str], since: float, until: float, buckets: int
    ) -> list[Tally]:
        """Per rule: states, skip reasons, trend, median time to delivered (ConsoleReads)."""
        with self.reading() as tx:
            return overview(tx.connection, rule_ids, since, until, buckets)

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
