"""An inbound message row as every backend selects it (with the notification it replied to)."""

from __future__ import annotations

from typing import Any

from nextstep.engine.ledger.base import InboundRecord, ReplyTarget
from nextstep.engine.ledger.codec import loads

# ``i`` is inbound_messages, ``n`` the notification it replied to (LEFT JOIN on reply_to).
INBOUND_COLUMNS = (
    "i.id, i.channel, i.provider_id, i.sender, i.name, i.type, i.text, i.sent_at, "
    "i.received_at, i.quoted_id, i.keyword, n.id, n.rule_id, n.dedupe_key, n.event"
)
INBOUND_FROM = "inbound_messages i LEFT JOIN notifications n ON n.id = i.reply_to"


def to_inbound(row: tuple[Any, ...]) -> InboundRecord:
    """An :class:`InboundRecord` from a row selected with :data:`INBOUND_COLUMNS`."""
    reply = None if row[11] is None else ReplyTarget(row[11], row[12], row[13], loads(row[14]))
    return InboundRecord(
        id=row[0],
        channel=row[1],
        provider_id=row[2],
        sender=row[3],
        name=row[4],
        type=row[5],
        text=row[6],
        sent_at=row[7],
        received_at=row[8],
        quoted_id=row[9],
        keyword=row[10],
        reply_to=reply,
    )
