"""The web console's reads on the SQLite ledger (see :class:`ledger.reads.ConsoleReads`).

Functions take a connection inside :meth:`SqliteStore.reading` (``decide``: a write
transaction); :class:`SqliteConsoleReads` gives the store the methods. Each read is shaped for
an index of migration ``0008_console_reads`` so that it stays fast on a ledger of a million
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
from nextstep.engine.ledger.rows import BY_DEDUPE_KEY
from nextstep.engine.ledger.sqlite import send
from nextstep.engine.ledger.sqlite.read import get, history
from nextstep.engine.ledger.sqlite.rows import COLUMNS, add_history, to_notification
from nextstep.engine.ledger.sqlite.transaction import SqliteTransaction


def known_rules(conn: sqlite3.Connection) -> list[str]:
    """Every rule id the ledger keeps a version of."""
    return [row[0] for row in conn.execute("SELECT DISTINCT rule_id FROM rule_versions")]


def _span(since: float, until: float | None) -> tuple[str, list[float]]:
    if until is None:
        return "created_at >= ?", [since]
    return "created_at >= ? AND created_at < ?", [since, until]


def period_counts(
    conn: sqlite3.Connection,
    rule_ids: Sequence[str],
    since: float,
    until: float | None,
    width: float,
) -> Counts:
    """Notifications created in the span per rule, period and state (see ConsoleReads)."""
    span, bounds = _span(since, until)
    wanted = {*rule_ids, *known_rules(conn)}
    # The span's entries of the covering (created, rule, state) index, every rule at once.
    rows = conn.execute(
        "SELECT rule_id, CAST(created_at / ? AS INTEGER) AS p, state, COUNT(*) "
        f"FROM notifications INDEXED BY notifications_created_rule_state WHERE {span} "
        "GROUP BY rule_id, p, state",
        (width, *bounds),
    )
    states: list[PeriodCount] = sorted(row for row in rows if row[0] in wanted)
    # Duplicates, the usual reason, are counted together in SQL; reason_kind does the rest.
    rows = conn.execute(
        "SELECT rule_id, CAST(created_at / ? AS INTEGER) AS p, CASE WHEN reason LIKE "
        "'duplicate of #%' THEN 'duplicate of #…' ELSE reason END AS kind, COUNT(*) "
        f"FROM notifications INDEXED BY notifications_skipped WHERE state = 'skipped' AND {span} "
        "GROUP BY rule_id, p, kind",
        (width, *bounds),
    )
    kinds: dict[tuple[str, int, str], int] = {}
    for rule_id, period, reason, n in rows:
        key = (rule_id, period, reason_kind(reason))
        kinds[key] = kinds.get(key, 0) + n
    return Counts(tuple(states), tuple((*key, n) for key, n in kinds.items()))


def times_to_delivered(
    conn: sqlite3.Connection, rule_ids: Sequence[str], since: float
) -> dict[str, float]:
    """Per rule, the median time to the first delivered ack (see ConsoleReads)."""
    found = {}
    for rule_id in rule_ids:
        rows = conn.execute(
            "SELECT (SELECT MIN(h.at) FROM history h WHERE h.notification_id = n.id "
            "AND h.kind = 'ack' AND json_extract(h.detail, '$.status') IN ('delivered', 'read')) "
            "- n.created_at FROM notifications n WHERE n.rule_id = ? AND n.created_at >= ? "
            "AND n.state IN ('delivered', 'read') ORDER BY n.created_at DESC LIMIT ?",
            (rule_id, since, MEDIAN_SAMPLE),
        ).fetchall()
        times = [row[0] for row in rows if row[0] is not None]
        if times:
            found[rule_id] = statistics.median(times)
    return found


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
            clauses.append(f"{column} = ?")
            params.append(value)
    if filters.dedupe_key is not None:
        clauses.append(BY_DEDUPE_KEY.replace("?", "?"))
        params += [filters.dedupe_key] * 2
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


def trace(conn: sqlite3.Connection, notification_id: int) -> Trace | None:
    """One notification, its history and its fallback chain."""
    found = get(conn, notification_id)
    if found is None:
        return None
    line = chain(notification_id, lambda i: _relative(conn, i), lambda i: _children(conn, i))
    return Trace(found, history(conn, notification_id), line)


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
