"""Inbound messages in the PostgreSQL ledger. Keeping them takes an advisory lock first
(:data:`optouts.INBOUND`), so ids are committed in the order they are given and a reader
that remembers the last id it saw never misses one committed late."""

from __future__ import annotations

from collections.abc import Sequence

from nextstep.engine.ledger.base import InboundRecord, InboundStored, NewInbound
from nextstep.engine.ledger.inbound import INBOUND_COLUMNS, INBOUND_FROM, to_inbound
from nextstep.engine.ledger.postgres.optouts import add_optouts, remove_optouts
from nextstep.engine.ledger.postgres.sql import Conn


def _replied_to(conn: Conn, quoted_id: str | None) -> int | None:
    if not quoted_id:
        return None
    row = conn.execute(
        "SELECT id FROM notifications WHERE provider_id = %s ORDER BY id DESC LIMIT 1",
        (quoted_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def record_inbound(conn: Conn, items: Sequence[NewInbound]) -> list[InboundStored | None]:
    """Keep new messages (None for one already kept) and apply what each new one asks."""
    results: list[InboundStored | None] = []
    for item in items:
        m = item.message
        reply_to = _replied_to(conn, m.quoted_id)
        row = conn.execute(
            "INSERT INTO inbound_messages (channel, provider_id, sender, name, type, text, "
            "sent_at, received_at, quoted_id, reply_to, keyword) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (channel, provider_id) DO NOTHING RETURNING id",
            (
                item.channel,
                m.provider_id,
                m.sender,
                m.name,
                m.type,
                m.text,
                float(item.received_at if m.sent_at is None else m.sent_at),
                float(item.received_at),
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
    conn: Conn, after_id: int, channels: Sequence[str] | None, limit: int
) -> list[InboundRecord]:
    """Kept messages after ``after_id`` (of ``channels``), oldest first."""
    if channels is None:
        rows = conn.execute(
            f"SELECT {INBOUND_COLUMNS} FROM {INBOUND_FROM} WHERE i.id > %s ORDER BY i.id LIMIT %s",
            (after_id, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {INBOUND_COLUMNS} FROM {INBOUND_FROM} WHERE i.id > %s "
            "AND i.channel = ANY(%s) ORDER BY i.id LIMIT %s",
            (after_id, list(channels), limit),
        ).fetchall()
    return [to_inbound(row) for row in rows]


def last_inbound_id(conn: Conn) -> int:
    """The newest kept message's id, 0 when none."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM inbound_messages").fetchone()
    return 0 if row is None else int(row[0])


def prune_inbound(conn: Conn, before: float) -> int:
    """Forget messages received before ``before``."""
    rows = conn.execute(
        "DELETE FROM inbound_messages WHERE received_at < %s RETURNING 1", (float(before),)
    ).fetchall()
    return len(rows)
