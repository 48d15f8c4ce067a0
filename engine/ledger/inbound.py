"""An inbound message row as every backend selects it (with the notification it replied to)."""

from __future__ import annotations

from typing import Any

from nextstep.engine.ledger.base import InboundRecord, ReplyTarget
from nextstep.engine.ledger.codec import loads
from nextstep.engine.ledger.packing import unpack

# ``i`` is inbound_messages, ``n`` the notification it replied to (LEFT JOIN on reply_to), ``p``
# the sample its event is packed against (ledger.packing; none for a row from before 0011).
INBOUND_COLUMNS = (
    "i.id, i.channel, i.provider_id, i.sender, i.name, i.type, i.text, i.sent_at, "
    "i.received_at, i.quoted_id, i.keyword, n.id, n.rule_id, n.dedupe_key, n.event, "
    "n.packed, p.sample"
)
INBOUND_FROM = (
    "inbound_messages i LEFT JOIN notifications n ON n.id = i.reply_to "
    "LEFT JOIN packing p ON n.packed IS NOT NULL AND p.rule_id = n.rule_id "
    "AND p.rule_version = n.rule_version"
)


def _event(row: tuple[Any, ...]) -> Any:
    if row[15] is None:
        return loads(row[14])
    return unpack(bytes(row[15]), bytes(row[16]))[1]


def to_inbound(row: tuple[Any, ...]) -> InboundRecord:
    """An :class:`InboundRecord` from a row selected with :data:`INBOUND_COLUMNS`."""
    reply = None if row[11] is None else ReplyTarget(row[11], row[12], row[13], _event(row))
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
