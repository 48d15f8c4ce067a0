"""Writing events into the PostgreSQL ledger: notifications, trigger progress, rule versions.

A batch reserves its ids from ``notifications_id_seq`` first (in item order), then goes in as
one ``INSERT … SELECT FROM unnest(…)`` whose rows the dedupe index may refuse (a queued row's
``created`` history line is made on reading: ledger.rows.with_created). Only a batch with a
duplicate or a supersede key takes the slower path, item by item, as SQLite's does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nextstep.engine.errors import ProgressClaimed, StoreError
from nextstep.engine.ledger.base import Enqueued, NewNotification
from nextstep.engine.ledger.codec import dumps, loads
from nextstep.engine.ledger.packing import Packable, Packer
from nextstep.engine.ledger.postgres.optouts import SAMPLES
from nextstep.engine.ledger.postgres.sql import Conn, add_history, columns, real
from nextstep.engine.model import Progress, State

_RESERVE = "SELECT nextval('notifications_id_seq') FROM generate_series(1, %s)"
_NEW = (
    "INSERT INTO notifications (id, rule_id, rule_version, channel, recipient, "
    "fields, event, trigger, state, created_at, updated_at, next_attempt_at, dedupe_key, "
    "expect, within, valid_until, supersede_key, parent_id, fallback_step, reason, packed) "
    "SELECT id, rule_id, rule_version, channel, recipient, '', '', '', 'queued', "
    "created_at, created_at, due, dedupe_key, expect, within, valid_until, supersede_key, "
    "parent_id, fallback_step, '', packed FROM unnest(%b::bigint[], %b::text[], %b::text[], "
    "%b::text[], %b::text[], %b::bytea[], %b::float8[], %b::float8[], "
    "%b::text[], %b::text[], %b::float8[], %b::float8[], %b::text[], %b::bigint[], %b::int[]) "
    "AS r(id, rule_id, rule_version, channel, recipient, packed, created_at, "
    "due, dedupe_key, expect, within, valid_until, supersede_key, parent_id, fallback_step) "
    "ORDER BY id ON CONFLICT (rule_id, dedupe_key) WHERE duplicate_of IS NULL DO NOTHING "
    "RETURNING id"
)
_SKIPPED = (
    "INSERT INTO notifications (id, rule_id, rule_version, channel, recipient, fields, event, "
    "trigger, state, created_at, updated_at, next_attempt_at, dedupe_key, duplicate_of, "
    "expect, within, valid_until, supersede_key, parent_id, fallback_step, reason, packed) "
    "VALUES (%s, %s, %s, %s, %s, '', '', '', 'skipped', %s, %s, NULL, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, %s)"
)
_PROGRESS = (
    "INSERT INTO progress (key, value) SELECT * FROM unnest(%b::text[], %b::text[]) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def packer(conn: Conn, items: Iterable[Packable] = ()) -> Packer:
    """Packs the fields, event and trigger of the rows one transaction writes (0011). Two
    workers making a rule version's first rows at once: one keeps its sample, the other waits
    for its commit (the samples lock) and packs against that one."""

    def find(rule_id: str, version: str) -> bytes | None:
        row = conn.execute(
            "SELECT sample FROM packing WHERE rule_id = %s AND rule_version = %s",
            (rule_id, version),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def keep(rule_id: str, version: str, sample: bytes) -> bytes:
        # One writer at a time keeps samples (rare: a rule version's first rows), so that two
        # transactions keeping two samples in opposite orders cannot wait on each other.
        conn.execute(SAMPLES)
        kept = find(rule_id, version)
        if kept is not None:
            return kept
        conn.execute(
            "INSERT INTO packing (rule_id, rule_version, sample) VALUES (%s, %s, %s) "
            "ON CONFLICT (rule_id, rule_version) DO NOTHING",
            (rule_id, version, sample),
        )
        kept = find(rule_id, version)
        if kept is None:  # packing a row against a sample not kept would lose it
            raise StoreError(f"no compression sample kept for {rule_id} {version}")
        return kept

    return Packer(find, keep, items)


def _row(new_id: int, item: NewNotification, packing: Packer) -> tuple[Any, ...]:
    created = float(item.created_at)
    due = created if item.not_before is None or item.not_before < created else item.not_before
    return (
        new_id,
        item.rule_id,
        item.rule_version,
        item.channel,
        item.recipient,
        packing.pack(item.rule_id, item.rule_version, item.fields, item.event, item.trigger),
        created,
        float(due),
        item.dedupe_key,
        item.expect,
        real(item.within),
        real(item.valid_until),
        item.supersede_key,
        item.parent_id,
        item.fallback_step,
    )


def _insert_duplicate(conn: Conn, item: NewNotification, dup_id: int, packing: Packer) -> Enqueued:
    """Keep a notification the dedupe index refused as a skipped row pointing at the first."""
    found = conn.execute(
        "SELECT id FROM notifications WHERE rule_id = %s AND dedupe_key = %s "
        "AND duplicate_of IS NULL",
        (item.rule_id, item.dedupe_key),
    ).fetchone()
    if found is None:  # the index refused the row because this one exists
        raise StoreError(f"dedupe key {item.dedupe_key!r} of rule {item.rule_id} vanished")
    first = int(found[0])
    reason = f"duplicate of #{first}"
    conn.execute(
        _SKIPPED,
        (
            dup_id,
            item.rule_id,
            item.rule_version,
            item.channel,
            item.recipient,
            item.created_at,
            item.created_at,
            item.dedupe_key,
            first,
            item.expect,
            item.within,
            item.valid_until,
            item.supersede_key,
            item.parent_id,
            item.fallback_step,
            reason,
            packing.pack(item.rule_id, item.rule_version, item.fields, item.event, item.trigger),
        ),
    )
    detail = {"state": "skipped", "reason": reason}
    add_history(conn, [(dup_id, item.created_at, "created", detail)])
    return Enqueued(dup_id, State.SKIPPED, duplicate_of=first)


def _supersede(conn: Conn, item: NewNotification, new_id: int) -> None:
    """Older queued notifications of the rule with the same supersede key give way."""
    rows = conn.execute(
        "UPDATE notifications SET state = 'superseded', reason = %s, updated_at = %s, "
        "next_attempt_at = NULL WHERE rule_id = %s AND supersede_key = %s AND state = 'queued' "
        "AND id < %s RETURNING id",
        (f"superseded by #{new_id}", item.created_at, item.rule_id, item.supersede_key, new_id),
    ).fetchall()
    detail = {"state": "superseded", "by": new_id}
    add_history(conn, [(row[0], item.created_at, "state", detail) for row in sorted(rows)])


def enqueue(
    conn: Conn, items: Sequence[NewNotification], progress: Sequence[Progress]
) -> list[Enqueued]:
    """Insert ``items`` (duplicates as skipped rows) and save ``progress``; one result each."""
    results: list[Enqueued] = []
    if items:
        ids = sorted(row[0] for row in conn.execute(_RESERVE, (len(items),)).fetchall())
        packing = packer(conn, items)
        rows = [_row(new_id, item, packing) for new_id, item in zip(ids, items, strict=True)]
        written = {row[0] for row in conn.execute(_NEW, columns(rows, 15))}
        for new_id, item in zip(ids, items, strict=True):
            if new_id not in written:
                results.append(_insert_duplicate(conn, item, new_id, packing))
                continue
            if item.supersede_key is not None:
                _supersede(conn, item, new_id)
            results.append(Enqueued(new_id, State.QUEUED))
    if progress:
        latest = {p.key: p.value for p in progress}  # one row may not be updated twice
        conn.execute(_PROGRESS, (list(latest), list(latest.values())))
    return results


def get_progress(conn: Conn, key: str) -> str | None:
    """The saved progress value of ``key``."""
    row = conn.execute("SELECT value FROM progress WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row[0])


def save_rule_version(
    conn: Conn, rule_id: str, version: str, definition: Mapping[str, Any]
) -> None:
    """Keep a rule definition; a version, being a hash of it, never changes once kept."""
    conn.execute(
        "INSERT INTO rule_versions (rule_id, version, definition) VALUES (%s, %s, %s) "
        "ON CONFLICT (rule_id, version) DO NOTHING",
        (rule_id, version, dumps(definition)),
    )


def get_rule_version(conn: Conn, rule_id: str, version: str) -> Mapping[str, Any] | None:
    """A kept rule definition."""
    row = conn.execute(
        "SELECT definition FROM rule_versions WHERE rule_id = %s AND version = %s",
        (rule_id, version),
    ).fetchone()
    if row is None:
        return None
    value: Mapping[str, Any] = loads(row[0])
    return value


def claim_progress(conn: Conn, progress: Sequence[Progress]) -> None:
    """Insert each claimed key; raise :class:`ProgressClaimed` if one exists (the caller's
    transaction then rolls back). A concurrent claim of the same key waits for the first to
    commit or roll back, so exactly one wins."""
    for p in progress:
        if not p.claim:
            continue
        row = conn.execute(
            "INSERT INTO progress (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING "
            "RETURNING key",
            (p.key, p.value),
        ).fetchone()
        if row is None:
            raise ProgressClaimed(p.key)
