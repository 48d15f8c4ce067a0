"""Opt-outs in the PostgreSQL ledger: keeping them, and the notifications they stop.

Concurrent transactions must not miss each other: an enqueue that checked the list before an
opt-out committed could queue a row the opt-out's own update did not see. So every write
transaction takes the opt-out lock (an advisory lock) in shared mode as its first statement
(:meth:`PostgresStore.transaction`), and adding opt-outs takes it exclusively as its first: an
enqueue then either committed before the opt-out's update ran (which skips its rows) or checks
the list after the opt-out committed (and writes them skipped). Taking it first, before any
row lock, means no transaction waits for it while holding a row another one needs. The
migration's trigger takes it too, for a row going back to queued outside a transaction of the
store (a statement of the send path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import Cursor

from nextstep.engine.ledger.base import (
    OPTED_OUT,
    Enqueued,
    NewNotification,
    OptOut,
    OptOutResult,
)
from nextstep.engine.ledger.postgres.sql import Conn, add_history, columns
from nextstep.engine.ledger.suppression import detail, scopes_text, stops
from nextstep.engine.model import State

_KEY = 1853253748  # "next": the first half of nextstep's advisory lock keys
SHARED = f"SELECT pg_advisory_xact_lock_shared({_KEY}, 1)"
EXCLUSIVE = f"SELECT pg_advisory_xact_lock({_KEY}, 1)"
INBOUND = f"SELECT pg_advisory_xact_lock({_KEY}, 2)"  # inbound ids committed in id order
SAMPLES = f"SELECT pg_advisory_xact_lock({_KEY}, 3)"  # packing samples kept one at a time
_MATCHES = (
    "((optout_scopes IS NULL AND (%s = '*' OR channel = %s)) "
    "OR strpos(optout_scopes, ',' || %s || ',') > 0)"
)
_SELECT = "SELECT recipient, channel, at, how, note FROM optouts"


def lookup(conn: Conn, items: Sequence[NewNotification]) -> Cursor[Any] | None:
    """Ask for the opt-outs of ``items``' recipients without waiting for the answer: in
    pipeline mode it travels with the enqueue's own statements (no round trip of its own);
    :func:`skip_opted_out` reads it."""
    recipients = sorted({i.recipient for i in items if i.recipient})
    if not recipients:
        return None
    return conn.execute(f"{_SELECT} WHERE recipient = ANY(%s)", (recipients,))


def _kept(rows: Iterable[Sequence[Any]]) -> dict[str, list[OptOut]]:
    found: dict[str, list[OptOut]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(OptOut(*row))
    return found


def set_scopes(conn: Conn, items: Sequence[NewNotification], results: Sequence[Enqueued]) -> None:
    """Keep each new notification's opt-out channels when they are not the default."""
    rows = [
        (done.id, scopes_text(item.optout))
        for item, done in zip(items, results, strict=True)
        if item.optout is not None
    ]
    if rows:
        conn.execute(
            "UPDATE notifications SET optout_scopes = r.scopes "
            "FROM unnest(%b::bigint[], %b::text[]) AS r(id, scopes) WHERE notifications.id = r.id",
            columns(rows, 2),
        )


def skip_opted_out(
    conn: Conn,
    items: Sequence[NewNotification],
    results: list[Enqueued],
    asked: Cursor[Any] | None,
) -> list[Enqueued]:
    """After an enqueue (which holds the opt-out lock, shared, since before ``asked`` was
    sent): the rows just queued that an opt-out stops become skipped (opted out); ``results``
    with their new state."""
    kept = {} if asked is None else _kept(asked.fetchall())
    if not kept:
        return results
    lines: list[tuple[int, float, str, dict[str, Any]]] = []
    skipped: list[tuple[int, float]] = []
    out = list(results)
    for index, (item, done) in enumerate(zip(items, results, strict=True)):
        if done.state is not State.QUEUED:
            continue
        stopping = next((o for o in kept.get(item.recipient, ()) if stops(item, o.channel)), None)
        if stopping is None:
            continue
        skipped.append((done.id, float(item.created_at)))
        lines.append((done.id, item.created_at, "state", detail(stopping)))
        out[index] = Enqueued(done.id, State.SKIPPED, reason=OPTED_OUT)
    if skipped:
        conn.execute(
            "UPDATE notifications SET state = 'skipped', reason = 'opted out', "
            "updated_at = r.at, next_attempt_at = NULL "
            "FROM unnest(%b::bigint[], %b::float8[]) AS r(id, at) WHERE notifications.id = r.id",
            columns(skipped, 2),
        )
        add_history(conn, lines)
    return out


def add_optouts(conn: Conn, entries: Sequence[OptOut]) -> OptOutResult:
    """Keep new opt-outs and skip the queued notifications each one stops (the caller holds
    the opt-out lock exclusively)."""
    added = already = 0
    skipped: list[tuple[int, str]] = []
    for entry in entries:
        inserted = conn.execute(
            "INSERT INTO optouts (recipient, channel, at, how, note) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (recipient, channel) DO NOTHING "
            "RETURNING 1",
            (entry.recipient, entry.channel, float(entry.at), entry.how, entry.note),
        ).fetchone()
        if inserted is None:
            already += 1
            continue
        added += 1
        rows = sorted(
            conn.execute(
                "UPDATE notifications SET state = 'skipped', reason = 'opted out', "
                "updated_at = %s, next_attempt_at = NULL "
                f"WHERE state = 'queued' AND recipient = %s AND {_MATCHES} "
                # found by the last digits' index (0011): an opt-out is rare, a tail's rows few
                "AND right(recipient, 4) = right(%s, 4) RETURNING id, rule_id",
                (
                    float(entry.at),
                    entry.recipient,
                    entry.channel,
                    entry.channel,
                    entry.channel,
                    entry.recipient,
                ),
            ).fetchall()
        )
        add_history(conn, [(row[0], entry.at, "state", detail(entry)) for row in rows])
        skipped.extend((int(row[0]), str(row[1])) for row in rows)
    return OptOutResult(added, already, tuple(skipped))


def remove_optouts(conn: Conn, keys: Sequence[tuple[str, str]]) -> int:
    """Remove opt-outs ``(recipient, channel)``; how many there were."""
    if not keys:
        return 0
    rows = conn.execute(
        "DELETE FROM optouts o USING unnest(%b::text[], %b::text[]) AS k(recipient, channel) "
        "WHERE o.recipient = k.recipient AND o.channel = k.channel RETURNING 1",
        columns(keys, 2),
    ).fetchall()
    return len(rows)


def optouts(conn: Conn, recipients: Sequence[str] | None, limit: int | None) -> list[OptOut]:
    """The opt-outs kept, by recipient and channel."""
    if recipients is not None:
        rows = conn.execute(
            f"{_SELECT} WHERE recipient = ANY(%s) ORDER BY recipient, channel LIMIT %s",
            (sorted(set(recipients)), limit),
        ).fetchall()
    else:
        rows = conn.execute(f"{_SELECT} ORDER BY recipient, channel LIMIT %s", (limit,)).fetchall()
    return [OptOut(*row) for row in rows]
