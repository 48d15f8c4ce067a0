"""Writing events into the SQLite ledger: notifications, trigger progress, rule versions.

Functions take the connection of an open transaction (:meth:`SqliteStore.transaction`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from engine.ledger.base import Enqueued, NewNotification
from engine.ledger.sqlite_rows import add_history, dumps, loads
from engine.model import Progress, State

_INSERT = (
    "INSERT INTO notifications (rule_id, rule_version, channel, recipient, fields, event, "
    "trigger, state, created_at, updated_at, next_attempt_at, dedupe_key, duplicate_of, "
    "expect, within, valid_until, supersede_key, parent_id, fallback_step, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The UNIQUE index on (rule_id, dedupe_key) is the dedupe: a conflicting insert writes nothing.
_INSERT_NEW = (
    _INSERT
    + " ON CONFLICT (rule_id, dedupe_key) WHERE duplicate_of IS NULL DO NOTHING RETURNING id"
)


def _values(
    item: NewNotification, state: State, duplicate_of: int | None, reason: str
) -> tuple[Any, ...]:
    due = None
    if state is State.QUEUED:
        due = max(item.created_at, item.not_before or item.created_at)
    return (
        item.rule_id,
        item.rule_version,
        item.channel,
        item.recipient,
        dumps(item.fields),
        dumps(item.event),
        dumps(item.trigger),
        state.value,
        item.created_at,
        item.created_at,
        due,
        item.dedupe_key,
        duplicate_of,
        item.expect,
        item.within,
        item.valid_until,
        item.supersede_key,
        item.parent_id,
        item.fallback_step,
        reason,
    )


def _supersede(conn: sqlite3.Connection, item: NewNotification, new_id: int) -> list[int]:
    """Older queued notifications of the rule with the same supersede key give way."""
    rows = conn.execute(
        "UPDATE notifications SET state = 'superseded', reason = ?, updated_at = ?, "
        "next_attempt_at = NULL WHERE rule_id = ? AND supersede_key = ? AND state = 'queued' "
        "AND id < ? RETURNING id",
        (f"superseded by #{new_id}", item.created_at, item.rule_id, item.supersede_key, new_id),
    ).fetchall()
    return [row[0] for row in rows]


def _insert_one(conn: sqlite3.Connection, item: NewNotification, history: list[Any]) -> Enqueued:
    row = conn.execute(_INSERT_NEW, _values(item, State.QUEUED, None, "")).fetchone()
    if row is not None:
        new_id = int(row[0])
        history.append((new_id, item.created_at, "created", {"state": "queued"}))
        if item.supersede_key is not None:
            for old in _supersede(conn, item, new_id):
                detail = {"state": "superseded", "by": new_id}
                history.append((old, item.created_at, "state", detail))
        return Enqueued(new_id, State.QUEUED)
    first = conn.execute(
        "SELECT id FROM notifications WHERE rule_id = ? AND dedupe_key = ? "
        "AND duplicate_of IS NULL",
        (item.rule_id, item.dedupe_key),
    ).fetchone()[0]
    reason = f"duplicate of #{first}"
    cursor = conn.execute(_INSERT, _values(item, State.SKIPPED, first, reason))
    dup_id = int(cursor.lastrowid or 0)
    history.append((dup_id, item.created_at, "created", {"state": "skipped", "reason": reason}))
    return Enqueued(dup_id, State.SKIPPED, duplicate_of=first)


def enqueue(
    conn: sqlite3.Connection, items: Sequence[NewNotification], progress: Sequence[Progress]
) -> list[Enqueued]:
    """Insert ``items`` (duplicates as skipped rows) and save ``progress``; one result each."""
    history: list[Any] = []
    results = [_insert_one(conn, item, history) for item in items]
    add_history(conn, history)
    conn.executemany(
        "INSERT INTO progress (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ((p.key, p.value) for p in progress),
    )
    return results


def get_progress(conn: sqlite3.Connection, key: str) -> str | None:
    """The saved progress value of ``key``."""
    row = conn.execute("SELECT value FROM progress WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def save_rule_version(
    conn: sqlite3.Connection, rule_id: str, version: str, definition: Mapping[str, Any]
) -> None:
    """Keep a rule definition; a version, being a hash of it, never changes once kept."""
    conn.execute(
        "INSERT INTO rule_versions (rule_id, version, definition) VALUES (?, ?, ?) "
        "ON CONFLICT (rule_id, version) DO NOTHING",
        (rule_id, version, dumps(definition)),
    )


def get_rule_version(
    conn: sqlite3.Connection, rule_id: str, version: str
) -> Mapping[str, Any] | None:
    """A kept rule definition."""
    row = conn.execute(
        "SELECT definition FROM rule_versions WHERE rule_id = ? AND version = ?",
        (rule_id, version),
    ).fetchone()
    if row is None:
        return None
    value: Mapping[str, Any] = loads(row[0])
    return value
