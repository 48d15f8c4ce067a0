"""What every backend's :class:`Store` shares: each method is one unit of work of its own.

A backend provides :meth:`TransactionalStore.transaction` (a write) and may provide a cheaper
:meth:`TransactionalStore.reading`; the methods here open one and call the transaction's method
of the same name, so a backend's whole behaviour lives in its :class:`LedgerTransaction`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from nextstep.engine.ledger.base import (
    AttemptResult,
    Enqueued,
    HistoryEntry,
    InboundRecord,
    InboundStored,
    LedgerTransaction,
    NewInbound,
    NewNotification,
    Notification,
    OptOut,
    OptOutResult,
)
from nextstep.engine.ledger.leases import Recovered, SoleSourceLock, SourceLock, WorkerRecord
from nextstep.engine.model import Progress, State


class TransactionalStore:
    """The :class:`Store` methods, each over one transaction of the backend."""

    def close(self) -> None:
        """Release the backend's connections."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[LedgerTransaction]:
        """One write transaction (see :meth:`Store.transaction`)."""
        raise NotImplementedError

    def source_lock(self, name: str) -> SourceLock:
        """The lock of a trigger source (see Store); one daemon per ledger by default."""
        return SoleSourceLock()

    def reading(self) -> AbstractContextManager[LedgerTransaction]:
        """A consistent read; by default a transaction."""
        return self.transaction()

    # -- writing events ------------------------------------------------------------------
    def enqueue(
        self, items: Sequence[NewNotification], progress: Sequence[Progress] = ()
    ) -> list[Enqueued]:
        """Write notifications and trigger progress in one transaction (see Store)."""
        with self.transaction() as tx:
            return tx.enqueue(items, progress)

    def get_progress(self, key: str) -> str | None:
        """A trigger's last committed progress value."""
        with self.reading() as tx:
            return tx.get_progress(key)

    def save_rule_version(self, rule_id: str, version: str, definition: Mapping[str, Any]) -> None:
        """Keep a rule's definition by version (a no-op when already kept)."""
        with self.transaction() as tx:
            tx.save_rule_version(rule_id, version, definition)

    def get_rule_version(self, rule_id: str, version: str) -> Mapping[str, Any] | None:
        """A kept rule definition, None when unknown."""
        with self.reading() as tx:
            return tx.get_rule_version(rule_id, version)

    # -- dispatching ---------------------------------------------------------------------
    def lease_due(
        self,
        now: float,
        limit: int,
        channels: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> list[Notification]:
        """Lease due notifications (see Store)."""
        with self.transaction() as tx:
            return tx.lease_due(now, limit, channels, ids, owner, lease_until)

    def record_attempts(self, results: Sequence[AttemptResult], owner: str | None = None) -> None:
        """Apply a batch of attempt results in one transaction."""
        if not results:
            return
        with self.transaction() as tx:
            tx.record_attempts(results, owner)

    def requeue(
        self, items: Sequence[tuple[int, float]], now: float, owner: str | None = None
    ) -> None:
        """Return leased notifications to the queue without counting an attempt."""
        if not items:
            return
        with self.transaction() as tx:
            tx.requeue(items, now, owner)

    def mark_sending(self, ids: Sequence[int], now: float, owner: str | None = None) -> list[int]:
        """Mark leased rows whose request is about to be written (see Store)."""
        if not ids:
            return []
        with self.transaction() as tx:
            return tx.mark_sending(ids, now, owner)

    def claim_recipients(
        self, claims: Sequence[tuple[str, str, float]], now: float
    ) -> dict[tuple[str, str], float]:
        """Claim each ``(channel, recipient, spacing)`` send slot at ``now`` across workers;
        returns the refused ones with the time from which to try again. One daemon per
        ledger (SQLite) spaces its own sends: every claim is granted."""
        return {}

    def renew_leases(self, owner: str, until: float) -> int:
        """Extend ``owner``'s leases to ``until``; how many rows it holds."""
        with self.transaction() as tx:
            return tx.renew_leases(owner, until)

    def recover(self, now: float, gone: Sequence[str] | None = None) -> Recovered:
        """Recover expired leases and those of ``gone`` owners (see Store)."""
        with self.transaction() as tx:
            return tx.recover(now, gone)

    def heartbeat(self, worker: WorkerRecord) -> None:
        """Write this worker's row."""
        with self.transaction() as tx:
            tx.heartbeat(worker)

    def workers(self) -> list[WorkerRecord]:
        """Every worker row, the most recently seen first."""
        with self.reading() as tx:
            return tx.workers()

    def stop_worker(self, worker_id: str, now: float) -> None:
        """Record that a worker stopped cleanly."""
        with self.transaction() as tx:
            tx.stop_worker(worker_id, now)

    def next_due(
        self, channels: Sequence[str] | None = None, ids: Sequence[int] | None = None
    ) -> float | None:
        """Earliest ``next_attempt_at`` among queued notifications."""
        with self.reading() as tx:
            return tx.next_due(channels, ids)

    def recover_interrupted(self, now: float) -> int:
        """Rows left in ``sending`` by a crash become ``in_doubt``; returns how many."""
        with self.transaction() as tx:
            return tx.recover_interrupted(now)

    # -- reading -------------------------------------------------------------------------
    def get(self, notification_id: int) -> Notification | None:
        """One notification, None when unknown."""
        with self.reading() as tx:
            return tx.get(notification_id)

    def find(
        self, *, provider_id: str | None = None, dedupe_key: str | None = None
    ) -> list[Notification]:
        """Notifications with this provider message id and/or dedupe key."""
        with self.reading() as tx:
            return tx.find(provider_id=provider_id, dedupe_key=dedupe_key)

    def history(self, notification_id: int) -> list[HistoryEntry]:
        """A notification's history, oldest first."""
        with self.reading() as tx:
            return tx.history(notification_id)

    def counts(
        self, since: float | None = None, rule_id: str | None = None
    ) -> dict[tuple[str, str], int]:
        """Notifications by (rule id, state) created since ``since``."""
        with self.reading() as tx:
            return tx.counts(since, rule_id)

    def queue_depth(self, now: float) -> int:
        """How many queued notifications are due at ``now``."""
        with self.reading() as tx:
            return tx.queue_depth(now)

    # -- deciding in-doubt and cancelling ------------------------------------------------
    def release(self, notification_id: int, now: float) -> bool:
        """Queue an in-doubt notification again (the operator decided to send it)."""
        with self.transaction() as tx:
            return tx.release(notification_id, now)

    def cancel(self, notification_id: int, now: float, reason: str = "cancelled") -> bool:
        """Cancel a queued or in-doubt notification."""
        with self.transaction() as tx:
            return tx.cancel(notification_id, now, reason)

    # -- opt-outs and inbound messages --------------------------------------------------
    def add_optouts(self, entries: Sequence[OptOut]) -> OptOutResult:
        """Keep opt-outs and skip the queued notifications they stop (see Store)."""
        with self.transaction() as tx:
            return tx.add_optouts(entries)

    def remove_optouts(self, keys: Sequence[tuple[str, str]]) -> int:
        """Remove opt-outs ``(recipient, channel)``; how many there were."""
        with self.transaction() as tx:
            return tx.remove_optouts(keys)

    def optouts(
        self, *, recipients: Sequence[str] | None = None, limit: int | None = None
    ) -> list[OptOut]:
        """The opt-outs kept."""
        with self.reading() as tx:
            return tx.optouts(recipients=recipients, limit=limit)

    def record_inbound(self, items: Sequence[NewInbound]) -> list[InboundStored | None]:
        """Keep inbound messages once and apply what new ones ask (see Store)."""
        with self.transaction() as tx:
            return tx.record_inbound(items)

    def inbound_after(
        self, after_id: int, *, channels: Sequence[str] | None = None, limit: int = 100
    ) -> list[InboundRecord]:
        """Kept inbound messages after ``after_id``, oldest first."""
        with self.reading() as tx:
            return tx.inbound_after(after_id, channels=channels, limit=limit)

    def last_inbound_id(self) -> int:
        """The newest inbound message's id (0 when none)."""
        with self.reading() as tx:
            return tx.last_inbound_id()

    def prune_inbound(self, before: float) -> int:
        """Forget inbound messages received before ``before``."""
        with self.transaction() as tx:
            return tx.prune_inbound(before)

    # last: a method named ``list`` would shadow the type in the annotations after it
    def list(self, *, state: State | None = None, limit: int = 100) -> list[Notification]:
        """The newest notifications, of one state when given."""
        with self.reading() as tx:
            return tx.list(state=state, limit=limit)
