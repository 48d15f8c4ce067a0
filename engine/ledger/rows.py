"""A notification row and a history line as every backend selects them."""

from __future__ import annotations

from typing import Any

from nextstep.engine.ledger.base import HistoryEntry, Notification
from nextstep.engine.ledger.codec import loads
from nextstep.engine.ledger.packing import unpack
from nextstep.engine.model import State

# The notification columns in the order of :class:`Notification`'s fields, then the packed
# fields/event/trigger with their rule version's sample (ledger.packing; both NULL in a row
# written before migration 0011). The same SQL in both dialects; a query selecting them names
# the table ``notifications`` (no alias).
COLUMNS = (
    "id, rule_id, rule_version, channel, recipient, fields, event, state, attempts, "
    "created_at, updated_at, next_attempt_at, dedupe_key, provider_id, expect, within, "
    "deadline_at, valid_until, supersede_key, parent_id, fallback_step, reason, "
    "failure_class, trigger, packed, CASE WHEN packed IS NULL THEN NULL ELSE (SELECT sample "
    "FROM packing WHERE packing.rule_id = notifications.rule_id "
    "AND packing.rule_version = notifications.rule_version) END"
)


def to_notification(row: tuple[Any, ...]) -> Notification:
    """A :class:`Notification` from a row selected with :data:`COLUMNS`."""
    if row[24] is None:
        fields, event, trigger = loads(row[5]), loads(row[6]), loads(row[23])
    else:
        fields, event, trigger = unpack(bytes(row[24]), bytes(row[25]))
    return Notification(
        id=row[0],
        rule_id=row[1],
        rule_version=row[2],
        channel=row[3],
        recipient=row[4],
        fields=fields,
        event=event,
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
        trigger=trigger,
    )


# Notifications with a dedupe key, whatever the rule (``?`` twice: the key): the first of each
# by the dedupe constraint's index (key first), duplicates by their own small one (0011).
BY_DEDUPE_KEY = (
    "((dedupe_key = ? AND duplicate_of IS NULL) OR (dedupe_key = ? AND duplicate_of IS NOT NULL))"
)

# A queued notification's first line, which enqueue writes no more (since 0011): the row says
# it. A row created otherwise (a skipped duplicate) and every row from before keep theirs.
CREATED = {"state": "queued"}


def with_created(
    notification_id: int, created_at: float | None, lines: list[HistoryEntry]
) -> list[HistoryEntry]:
    """``lines`` (oldest first) with the ``created`` line of a queued notification that has
    none kept; ``created_at`` None: the notification is not in the ledger."""
    if created_at is None or any(line.kind == "created" for line in lines):
        return lines
    return [HistoryEntry(notification_id, created_at, "created", dict(CREATED)), *lines]


def to_history(row: tuple[Any, ...]) -> HistoryEntry:
    """A :class:`HistoryEntry` from ``(notification_id, at, kind, detail)``."""
    return HistoryEntry(notification_id=row[0], at=row[1], kind=row[2], detail=loads(row[3]))
