"""Writing events into the SQLite ledger: notifications, trigger progress, rule versions.

Functions take the connection of an open transaction (:class:`SqliteTransaction` calls them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import compress
from operator import is_not
from typing import Any

from nextstep.engine.errors import ProgressClaimed, StoreError
from nextstep.engine.ledger.base import Enqueued, NewNotification
from nextstep.engine.ledger.codec import dumps, loads
from nextstep.engine.ledger.packing import Packable, Packer
from nextstep.engine.ledger.sqlite.rows import placeholders
from nextstep.engine.model import Progress, State

_INSERT = (
    "INSERT INTO notifications (id, rule_id, rule_version, channel, recipient, fields, event, "
    "trigger, state, created_at, updated_at, next_attempt_at, dedupe_key, duplicate_of, "
    "expect, within, valid_until, supersede_key, parent_id, fallback_step, reason, packed) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A new row's columns: those always set, then the optional ones that are set (sqlite3 binds a
# None through its adapter lookup, dearer than all the other parameters of a row together).
# Rows go in multi-row INSERTs: one statement runs many rows without taking Python's GIL back
# after each, so the renderer keeps running while the ledger's thread writes.
_ALWAYS = (
    "id, rule_id, rule_version, channel, recipient, fields, event, trigger, state, "
    "created_at, updated_at, next_attempt_at, expect, reason, packed"
)
_OPTIONAL = ("dedupe_key", "within", "valid_until", "supersede_key", "parent_id", "fallback_step")
_NONES = (None,) * len(_OPTIONAL)
_MAX_ROWS = 500  # rows per INSERT (fewer when SQLite's parameter limit requires)
_QUEUED = State.QUEUED.value
_HISTORY = "INSERT INTO history (notification_id, at, kind, detail) VALUES (?, ?, ?, ?)"


def packer(conn: sqlite3.Connection, items: Iterable[Packable] = ()) -> Packer:
    """Packs the fields, event and trigger of the rows one transaction writes (0011)."""

    def find(rule_id: str, version: str) -> bytes | None:
        row = conn.execute(
            "SELECT sample FROM packing WHERE rule_id = ? AND rule_version = ?",
            (rule_id, version),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def keep(rule_id: str, version: str, sample: bytes) -> bytes:
        conn.execute(
            "INSERT INTO packing (rule_id, rule_version, sample) VALUES (?, ?, ?) "
            "ON CONFLICT (rule_id, rule_version) DO NOTHING",
            (rule_id, version, sample),
        )
        kept = find(rule_id, version)
        if kept is None:  # packing a row against a sample not kept would lose it
            raise StoreError(f"no compression sample kept for {rule_id} {version}")
        return kept

    return Packer(find, keep, items)


@lru_cache(maxsize=256)
def _insert_new(given: tuple[bool, ...], rows: int) -> str:
    """The INSERT of ``rows`` new rows setting the optional columns marked in ``given``. The
    UNIQUE index on (rule_id, dedupe_key) is the dedupe: a conflicting row is not written."""
    columns = ", ".join([_ALWAYS, *compress(_OPTIONAL, given)])
    row = f"({placeholders(columns.count(',') + 1)})"
    return (
        f"INSERT INTO notifications ({columns}) VALUES {', '.join([row] * rows)} "
        "ON CONFLICT (rule_id, dedupe_key) WHERE duplicate_of IS NULL DO NOTHING"
    )


class _NewRows:
    """Accumulates new rows into multi-row INSERTs; ``written`` counts the rows written."""

    def __init__(self, conn: sqlite3.Connection, packing: Packer) -> None:
        self._conn = conn
        self._packer = packing
        self._limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._given: tuple[bool, ...] = ()
        self._params: list[Any] = []
        self._count = self._room = self.written = 0

    def add(self, new_id: int, item: NewNotification) -> None:
        """Queue ``item`` as a queued row with id ``new_id``."""
        optional = (
            item.dedupe_key,
            item.within,
            item.valid_until,
            item.supersede_key,
            item.parent_id,
            item.fallback_step,
        )
        given = tuple(map(is_not, optional, _NONES))
        if given != self._given or self._count == self._room:
            self.flush()
            self._given = given
            self._room = min(_MAX_ROWS, self._limit // (_ALWAYS.count(",") + 1 + sum(given)))
        created = item.created_at
        due = created if item.not_before is None or item.not_before < created else item.not_before
        self._params += (
            new_id,
            item.rule_id,
            item.rule_version,
            item.channel,
            item.recipient,
            "",
            "",
            "",
            _QUEUED,
            created,
            created,
            due,
            item.expect,
            "",
            self._packer.pack(
                item.rule_id, item.rule_version, item.fields, item.event, item.trigger
            ),
        )
        self._params += compress(optional, given)
        self._count += 1

    def flush(self) -> None:
        """Write the rows added since the last flush."""
        if self._count:
            sql = _insert_new(self._given, self._count)
            self.written += self._conn.execute(sql, self._params).rowcount
            self._params, self._count = [], 0


def _skipped_values(
    new_id: int, item: NewNotification, duplicate_of: int, reason: str, packing: Packer
) -> tuple[Any, ...]:
    return (
        new_id,
        item.rule_id,
        item.rule_version,
        item.channel,
        item.recipient,
        "",
        "",
        "",
        State.SKIPPED.value,
        item.created_at,
        item.created_at,
        None,
        item.dedupe_key,
        duplicate_of,
        item.expect,
        item.within,
        item.valid_until,
        item.supersede_key,
        item.parent_id,
        item.fallback_step,
        reason,
        packing.pack(item.rule_id, item.rule_version, item.fields, item.event, item.trigger),
    )


def _supersede(conn: sqlite3.Connection, item: NewNotification, new_id: int) -> list[int]:
    """Older queued notifications of the rule with the same supersede key give way."""
    rows = conn.execute(
        "UPDATE notifications SET state = 'superseded', reason = ?, updated_at = ?, "
        "next_attempt_at = NULL WHERE rule_id = ? AND supersede_key = ? AND state = 'queued' "
        "AND id < ? RETURNING id",
        (f"superseded by #{new_id}", item.created_at, item.rule_id, item.supersede_key, new_id),
    ).fetchall()
    return [row[0] for row in rows]


def _conflicts(conn: sqlite3.Connection, first_id: int, count: int) -> set[int]:
    """The ids reserved for a batch that the dedupe index left unused (the duplicates)."""
    rows = conn.execute(
        "SELECT id FROM notifications WHERE id BETWEEN ? AND ?", (first_id, first_id + count - 1)
    ).fetchall()
    return set(range(first_id, first_id + count)) - {row[0] for row in rows}


def _insert_duplicate(
    conn: sqlite3.Connection,
    item: NewNotification,
    dup_id: int,
    history: list[Any],
    packing: Packer,
) -> Enqueued:
    """Keep a notification the dedupe index refused as a skipped row pointing at the first."""
    first = conn.execute(
        "SELECT id FROM notifications WHERE rule_id = ? AND dedupe_key = ? "
        "AND duplicate_of IS NULL",
        (item.rule_id, item.dedupe_key),
    ).fetchone()[0]
    reason = f"duplicate of #{first}"
    conn.execute(_INSERT, _skipped_values(dup_id, item, first, reason, packing))
    detail = dumps({"state": "skipped", "reason": reason})
    history.append((dup_id, item.created_at, "created", detail))
    return Enqueued(dup_id, State.SKIPPED, duplicate_of=first)


def _settle(
    conn: sqlite3.Connection,
    items: Sequence[NewNotification],
    first_id: int,
    refused: set[int],
    packing: Packer,
) -> list[Enqueued]:
    """After the insert: skipped rows for the refused ids, supersedes, history, in item order."""
    results: list[Enqueued] = []
    history: list[Any] = []
    for new_id, item in enumerate(items, first_id):
        if new_id in refused:
            results.append(_insert_duplicate(conn, item, new_id, history, packing))
            continue
        if item.supersede_key is not None:
            for old in _supersede(conn, item, new_id):
                detail = dumps({"state": "superseded", "by": new_id})
                history.append((old, item.created_at, "state", detail))
        results.append(Enqueued(new_id, State.QUEUED))
    conn.executemany(_HISTORY, history)
    return results


def enqueue(
    conn: sqlite3.Connection, items: Sequence[NewNotification], progress: Sequence[Progress]
) -> list[Enqueued]:
    """Insert ``items`` (duplicates as skipped rows) and save ``progress``; one result each.

    Ids are reserved in item order inside the write transaction (which no other connection can
    enter), so they are the ids one-by-one inserts would get. The dedupe index is the judge: a
    row it refused leaves its id unused, and that id then holds the skipped duplicate.
    """
    results: list[Enqueued] = []
    if items:
        (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM notifications").fetchone()
        first_id = last + 1
        packing = packer(conn, items)
        rows = _NewRows(conn, packing)
        for new_id, item in enumerate(items, first_id):
            rows.add(new_id, item)
        rows.flush()
        if rows.written == len(items) and all(i.supersede_key is None for i in items):
            # The usual batch: every row new, nothing superseded. A queued row's ``created``
            # line is not written: reads make it from the row (ledger.rows.with_created).
            queued = State.QUEUED
            results = [
                Enqueued(new_id, queued) for new_id in range(first_id, first_id + len(items))
            ]
        else:
            refused = _conflicts(conn, first_id, len(items)) if rows.written < len(items) else set()
            results = _settle(conn, items, first_id, refused, packing)
    conn.executemany(
        "INSERT INTO progress (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ((p.key, p.value) for p in progress),
    )
    return results


def get_progress(conn: sqlite3.Connection, key: str) -> str | None:
    """The saved progress value of ``key``."""
    row = conn.execute("SELECT value FROM progress WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def save_rule_version(
    conn: sqlite3.Connection, rule_id: str, version: str, definition: Mapping[str, Any]
) -> None:
    """Keep a rule definition; a version, being a hash of it, never changes once kept."""
    conn.execute(
        "INSERT INTO rule_versions (rule_id, version, definition) VALUES (?, ?, ?) "
        "ON CONFLICT (rule_id, version) DO NOTHING",
        (rule_id, version, dumps(definition)),
    )


def get_rule_version(
    conn: sqlite3.Connection, rule_id: str, version: str
) -> Mapping[str, Any] | None:
    """A kept rule definition."""
    row = conn.execute(
        "SELECT definition FROM rule_versions WHERE rule_id = ? AND version = ?",
        (rule_id, version),
    ).fetchone()
    if row is None:
        return None
    value: Mapping[str, Any] = loads(row[0])
    return value


def claim_progress(conn: sqlite3.Connection, progress: Sequence[Progress]) -> None:
    """Insert each claimed key; raise :class:`ProgressClaimed` if one exists (the caller's
    transaction then rolls back). A concurrent claim of the same key waits for the first to
    commit or roll back, so exactly one wins."""
    for p in progress:
        if not p.claim:
            continue
        row = conn.execute(
            "INSERT INTO progress (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING "
            "RETURNING key",
            (p.key, p.value),
        ).fetchone()
        if row is None:
            raise ProgressClaimed(p.key)
