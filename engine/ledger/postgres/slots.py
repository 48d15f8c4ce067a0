"""The pair rate across workers on PostgreSQL: the last send to each recipient, per channel,
claimed by one conditional upsert per batch of marks. The row lock of ``ON CONFLICT DO
UPDATE`` makes two workers claiming one recipient at once take turns, and the second sees the
first's time, so no two workers send to one recipient within ``spacing``."""

from __future__ import annotations

from collections.abc import Sequence

from nextstep.engine.ledger.postgres.sql import Conn

# A send follows its claim by a commit and a scheduling turn, which vary between workers: the
# slot is kept this much longer than the spacing, so the sends, not only the claims, keep it.
MARGIN = 0.25

_CLAIM = (
    "WITH r AS (SELECT * FROM unnest(%(channels)s::text[], %(recipients)s::text[]) "
    "AS r(channel, recipient)), "
    "up AS (INSERT INTO recipient_slots (channel, recipient, last_at) "
    "SELECT channel, recipient, %(now)s FROM r ON CONFLICT (channel, recipient) "
    "DO UPDATE SET last_at = excluded.last_at "
    "WHERE recipient_slots.last_at <= excluded.last_at - %(gap)s RETURNING channel, recipient) "
    "SELECT r.channel, r.recipient, s.last_at FROM r JOIN recipient_slots s "
    "USING (channel, recipient) WHERE NOT EXISTS (SELECT 1 FROM up "
    "WHERE up.channel = r.channel AND up.recipient = r.recipient)"
)


def claim(
    conn: Conn, claims: Sequence[tuple[str, str, float]], now: float
) -> dict[tuple[str, str], float]:
    """Claim the slot of each ``(channel, recipient, spacing)`` at ``now``; the refused ones
    with the time from which their recipient is free."""
    refused: dict[tuple[str, str], float] = {}
    by_spacing: dict[float, list[tuple[str, str]]] = {}
    for channel, recipient, spacing in claims:
        key = (channel, recipient)
        group = by_spacing.setdefault(spacing, [])
        if key not in group:  # twice in one batch: one claim answers both
            group.append(key)
    for spacing, keys in by_spacing.items():
        rows = conn.execute(
            _CLAIM,
            {
                "channels": [c for c, _ in keys],
                "recipients": [r for _, r in keys],
                "now": now,
                "gap": spacing + MARGIN,
            },
        ).fetchall()
        for channel, recipient, last_at in rows:
            refused[(str(channel), str(recipient))] = float(last_at) + spacing + MARGIN
    return refused
