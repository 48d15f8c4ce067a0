"""Opt-outs in the SQLite ledger: keeping them, and the notifications they stop.

A notification's ``optout_scopes`` column holds the opt-out channels that stop it as
``,a,b,`` (NULL: its own channel's and ``*``; empty: none). SQLite runs one write transaction
at a time, so checking the list while enqueueing and skipping queued rows while adding an
opt-out cannot miss each other; the migration's trigger skips a row going back to queued.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from nextstep.engine.ledger.base import (
    OPTED_OUT,
    Enqueued,
    NewNotification,
    OptOut,
    OptOutResult,
)
from nextstep.engine.ledger.sqlite.rows import add_history, placeholders
from nextstep.engine.ledger.suppression import detail, scopes_text, stops
from nextstep.engine.model import State

_CHUNK = 500  # recipients per lookup (SQLite's parameter limit is far above)
_MATCHES = (
    "((optout_scopes IS NULL AND (? = '*' OR channel = ?)) "
    "OR instr(optout_scopes, ',' || ? || ',') > 0)"
)


def _of(conn: sqlite3.Connection, recipients: Iterable[str]) -> dict[str, list[OptOut]]:
    found: dict[str, list[OptOut]] = {}
    wanted = sorted(set(recipients))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = conn.execute(
            "SELECT recipient, channel, at, how, note FROM optouts "
            f"WHERE recipient IN ({placeholders(len(chunk))})",
            chunk,
        ).fetchall()
        for row in rows:
            found.setdefault(row[0], []).append(OptOut(*row))
    return found


def skip_opted_out(
    conn: sqlite3.Connection, items: Sequence[NewNotification], results: list[Enqueued]
) -> list[Enqueued]:
    """After an enqueue: the rows just queued that an opt-out stops become skipped (opted
    out), with the opt-out in their history; ``results`` with those rows' new state."""
    if not items or conn.execute("SELECT NOT EXISTS (SELECT 1 FROM optouts)").fetchone()[0]:
        return results
    kept = _of(conn, (i.recipient for i in items if i.recipient))
    if not kept:
        return results
    lines: list[tuple[int, float, str, dict[str, Any]]] = []
    skipped: list[tuple[float, int]] = []
    out = list(results)
    for index, (item, done) in enumerate(zip(items, results, strict=True)):
        if done.state is not State.QUEUED:
            continue
        stopping = next((o for o in kept.get(item.recipient, ()) if stops(item, o.channel)), None)
        if stopping is None:
            continue
        skipped.append((item.created_at, done.id))
        lines.append((done.id, item.created_at, "state", detail(stopping)))
        out[index] = Enqueued(done.id, State.SKIPPED, reason=OPTED_OUT)
    if skipped:
        conn.executemany(
            "UPDATE notifications SET state = 'skipped', reason = 'opted out', updated_at = ?, "
            "next_attempt_at = NULL WHERE id = ?",
            skipped,
        )
        add_history(conn, lines)
    return out


def add_optouts(conn: sqlite3.Connection, entries: Sequence[OptOut]) -> OptOutResult:
    """Keep new opt-outs and skip the queued notifications each one stops."""
    added = already = 0
    skipped: list[tuple[int, str]] = []
    for entry in entries:
        inserted = conn.execute(
            "INSERT INTO optouts (recipient, channel, at, how, note) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (recipient, channel) DO NOTHING",
            (entry.recipient, entry.channel, entry.at, entry.how, entry.note),
        ).rowcount
        if not inserted:
            already += 1
            continue
        added += 1
        rows = conn.execute(
            "UPDATE notifications SET state = 'skipped', reason = 'opted out', updated_at = ?, "
            f"next_attempt_at = NULL WHERE state = 'queued' AND recipient = ? AND {_MATCHES} "
            # found by the last digits' index (0011): an opt-out is rare, a tail's rows few
            "AND substr(recipient, -4) = substr(?, -4) RETURNING id, rule_id",
            (
                entry.at,
                entry.recipient,
                entry.channel,
                entry.channel,
                entry.channel,
                entry.recipient,
            ),
        ).fetchall()
        rows.sort()
        add_history(conn, [(row[0], entry.at, "state", detail(entry)) for row in rows])
        skipped.extend((row[0], row[1]) for row in rows)
    return OptOutResult(added, already, tuple(skipped))


def remove_optouts(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> int:
    """Remove opt-outs ``(recipient, channel)``; how many there were."""
    removed = 0
    for recipient, channel in keys:
        removed += conn.execute(
            "DELETE FROM optouts WHERE recipient = ? AND channel = ?", (recipient, channel)
        ).rowcount
    return removed


def optouts(
    conn: sqlite3.Connection, recipients: Sequence[str] | None, limit: int | None
) -> list[OptOut]:
    """The opt-outs kept, by recipient and channel."""
    if recipients is not None:
        found = _of(conn, recipients)
        listed = sorted(
            (o for kept in found.values() for o in kept), key=lambda o: (o.recipient, o.channel)
        )
        return listed if limit is None else listed[:limit]
    rows = conn.execute(
        "SELECT recipient, channel, at, how, note FROM optouts ORDER BY recipient, channel LIMIT ?",
        (-1 if limit is None else limit,),
    ).fetchall()
    return [OptOut(*row) for row in rows]


def set_scopes(
    conn: sqlite3.Connection, items: Sequence[NewNotification], results: Sequence[Enqueued]
) -> None:
    """Keep each new notification's opt-out channels when they are not the default."""
    rows = [
        (scopes_text(item.optout), done.id)
        for item, done in zip(items, results, strict=True)
        if item.optout is not None
    ]
    if rows:
        conn.executemany("UPDATE notifications SET optout_scopes = ? WHERE id = ?", rows)
