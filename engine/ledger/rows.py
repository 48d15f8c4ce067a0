"""A notification row and a history line as every backend selects them."""

from __future__ import annotations

from typing import Any

from nextstep.engine.ledger.base import HistoryEntry, Notification
from nextstep.engine.ledger.codec import loads
from nextstep.engine.model import State

# The notification columns in the order of :class:`Notification`'s fields.
COLUMNS = (
    "id, rule_id, rule_version, channel, recipient, fields, event, state, attempts, "
    "created_at, updated_at, next_attempt_at, dedupe_key, provider_id, expect, within, "
    "deadline_at, valid_until, supersede_key, parent_id, fallback_step, reason, "
    "failure_class, trigger"
)


def to_notification(row: tuple[Any, ...]) -> Notification:
    """A :class:`Notification` from a row selected with :data:`COLUMNS`."""
    return Notification(
        id=row[0],
        rule_id=row[1],
        rule_version=row[2],
        channel=row[3],
        recipient=row[4],
        fields=loads(row[5]),
        event=loads(row[6]),
        state=State(row[7]),
        attempts=row[8],
        created_at=row[9],
        updated_at=row[10],
        next_attempt_at=row[11],
        dedupe_key=row[12],
        provider_id=row[13],
        expect=row[14],
        within=row[15],
        deadline_at=row[16],
        valid_until=row[17],
        supersede_key=row[18],
        parent_id=row[19],
        fallback_step=row[20],
        reason=row[21],
        failure_class=row[22],
        trigger=loads(row[23]),
    )


def to_history(row: tuple[Any, ...]) -> HistoryEntry:
    """A :class:`HistoryEntry` from ``(notification_id, at, kind, detail)``."""
    return HistoryEntry(notification_id=row[0], at=row[1], kind=row[2], detail=loads(row[3]))
