"""Retention: how long the ledger keeps what is finished, and the loop that forgets the rest.

``retention:`` in nextstep.yaml (every key optional)::

    retention:
      notifications: 90d   # terminal notifications (and their history), by last change
      acks: 7d             # acks that matched a notification
      unknown_acks: 1d     # acks for message ids nextstep never sent (or not yet)

Only terminal notifications go: never one queued, sending or in doubt, never a failed or
expired one whose fallback is not decided yet, never one another row points at (a duplicate's
original, a fallback's parent: those go in a later round, after the rows pointing at them).
Pruning runs off the hot path, as small batches of their own short transactions on the ledger
thread, so an enqueue waits for one batch at most. Dedupe holds within the retention: an
event whose first notification was forgotten is new again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from nextstep.engine.clock import Clock
from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import NextstepError
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import PRUNED

log = logging.getLogger(__name__)

DAY = 86_400.0
TABLES = ("notifications", "acks", "unknown_acks")


@dataclass(frozen=True, slots=True)
class Retention:
    """Seconds each kind of row is kept (``retention:`` in nextstep.yaml)."""

    notifications: float = 90 * DAY
    acks: float = 7 * DAY
    unknown_acks: float = 1 * DAY
    batch: int = 200  # rows per transaction: an enqueue waits for one (~20 ms) at most
    every: float = 600.0  # seconds between rounds

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Retention:
        """``retention`` of the whole nextstep.yaml (the schema checked its shape)."""
        block = settings.get("retention")
        if not isinstance(block, Mapping):
            return cls()
        kept = cls()
        return cls(
            notifications=_seconds(block, "notifications", kept.notifications),
            acks=_seconds(block, "acks", kept.acks),
            unknown_acks=_seconds(block, "unknown_acks", kept.unknown_acks),
        )


def _seconds(block: Mapping[str, Any], key: str, default: float) -> float:
    value = block.get(key)
    return default if value is None else parse_duration(value)


@runtime_checkable
class Prunes(Protocol):
    """A store that can forget old rows (both bundled backends)."""

    def prune(self, table: str, before: float, limit: int) -> int:
        """Forget at most ``limit`` rows of ``table`` (one of :data:`TABLES`) last changed
        before ``before``, in one transaction; returns how many went."""
        ...

    def reclaim_space(self) -> None:
        """Give the space of forgotten rows back (SQLite's incremental vacuum; PostgreSQL's
        autovacuum does it by itself)."""
        ...


# Which notifications may go: terminal, their fallback decided, no deadline still ahead.
TERMINAL = """(
    state IN ('read', 'skipped', 'superseded', 'cancelled')
    OR (state IN ('failed', 'expired') AND settled_at IS NOT NULL)
    OR (state IN ('sent', 'delivered') AND (deadline_at IS NULL OR deadline_at < {p}))
)"""


def doomed_notifications_sql(p: str, hint: str = "") -> str:
    """The ids of a batch of prunable notifications, oldest first (``p`` is the dialect's
    placeholder, ``hint`` SQLite's INDEXED BY; parameters: before, before, before, limit).
    Walking the created-first index from the oldest row stops at ``limit`` matches (rather
    than sorting every old terminal row of a ledger that just turned retention on); the partial
    indexes of migration 0010 find what points at them."""
    return f"""
        SELECT n.id FROM notifications n {hint}
        WHERE n.created_at < {p} AND n.updated_at < {p} AND {TERMINAL.format(p=p)}
          AND NOT EXISTS (SELECT 1 FROM notifications d WHERE d.duplicate_of = n.id)
          AND NOT EXISTS (SELECT 1 FROM notifications c WHERE c.parent_id = n.id)
        ORDER BY n.created_at LIMIT {p}"""


def doomed_acks_sql(p: str, *, applied: bool) -> str:
    """The ids of a batch of acks received before the cut (parameters: before, limit)."""
    return (
        f"SELECT id FROM acks WHERE applied = {1 if applied else 0} AND received_at < {p} "
        f"ORDER BY received_at LIMIT {p}"
    )


async def prune_once(runner: LedgerRunner, now: float, retention: Retention) -> dict[str, int]:
    """One round: every table in batches until nothing is older than its retention; counts
    ``nextstep_pruned_rows_total{table}``. Each batch is its own call on the ledger thread,
    so other work runs between them."""
    store = runner.store
    if not isinstance(store, Prunes):
        return {}
    gone: dict[str, int] = {}
    for table in TABLES:
        before = now - float(getattr(retention, table))
        total = 0
        while True:
            count = await runner.call(store.prune, table, before, retention.batch)
            total += count
            if count:
                PRUNED.labels(table).inc(count)
            if count < retention.batch:
                break
        gone[table] = total
    if any(gone.values()):
        await runner.call(store.reclaim_space)
    return gone


async def run_retention(runner: LedgerRunner, clock: Clock, retention: Retention) -> None:
    """Prune every ``retention.every`` seconds until cancelled (the daemon's task)."""
    while True:
        try:
            gone = await prune_once(runner, clock.now(), retention)
        except NextstepError as exc:
            log.warning("old ledger rows not pruned: %s", exc)
        else:
            if any(gone.values()):
                shown = ", ".join(f"{n:,} {table}" for table, n in gone.items() if n)
                log.info("retention: forgot %s", shown)
        await clock.sleep(retention.every)
