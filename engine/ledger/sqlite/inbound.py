"""Inbound messages in the SQLite ledger: kept once per channel and provider id, read in id
order (AUTOINCREMENT ids only grow, and one write transaction runs at a time, so ids are
committed in order)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from nextstep.engine.ledger.base import InboundRecord, InboundStored, NewInbound
from nextstep.engine.ledger.inbound import INBOUND_COLUMNS, INBOUND_FROM, to_inbound
from nextstep.engine.ledger.sqlite.optouts import add_optouts, remove_optouts
from nextstep.engine.ledger.sqlite.rows import placeholders


def _replied_to(conn: sqlite3.Connection, quoted_id: str | None) -> int | None:
    if not quoted_id:
        return None
    row = conn.execute(
        "SELECT id FROM notifications WHERE provider_id = ? ORDER BY id DESC LIMIT 1",
        (quoted_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def record_inbound(
    conn: sqlite3.Connection, items: Sequence[NewInbound]
) -> list[InboundStored | None]:
    """Keep new messages (None for one already kept) and apply what each new one asks."""
    results: list[InboundStored | None] = []
    for item in items:
        m = item.message
        reply_to = _replied_to(conn, m.quoted_id)
        row = conn.execute(
            "INSERT INTO inbound_messages (channel, provider_id, sender, name, type, text, "
            "sent_at, received_at, quoted_id, reply_to, keyword) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, provider_id) DO NOTHING RETURNING id",
            (
                item.channel,
                m.provider_id,
                m.sender,
                m.name,
                m.type,
                m.text,
                item.received_at if m.sent_at is None else m.sent_at,
                item.received_at,
                m.quoted_id,
                reply_to,
                item.keyword,
            ),
        ).fetchone()
        if row is None:
            results.append(None)
            continue
        optout = add_optouts(conn, [item.optout]) if item.optout is not None else None
        lifted = remove_optouts(conn, [(m.sender, channel) for channel in item.lift])
        results.append(InboundStored(int(row[0]), reply_to, optout, lifted))
    return results


def inbound_after(
    conn: sqlite3.Connection, after_id: int, channels: Sequence[str] | None, limit: int
) -> list[InboundRecord]:
    """Kept messages after ``after_id`` (of ``channels``), oldest first."""
    params: list[object] = [after_id]
    where = "i.id > ?"
    if channels is not None:
        where += f" AND i.channel IN ({placeholders(len(channels))})"
        params.extend(channels)
    params.append(limit)
    rows = conn.execute(
        f"SELECT {INBOUND_COLUMNS} FROM {INBOUND_FROM} WHERE {where} ORDER BY i.id LIMIT ?",
        params,
    ).fetchall()
    return [to_inbound(row) for row in rows]


def last_inbound_id(conn: sqlite3.Connection) -> int:
    """The newest kept message's id, 0 when none."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM inbound_messages").fetchone()[0])


def prune_inbound(conn: sqlite3.Connection, before: float) -> int:
    """Forget messages received before ``before``."""
    return conn.execute("DELETE FROM inbound_messages WHERE received_at < ?", (before,)).rowcount
