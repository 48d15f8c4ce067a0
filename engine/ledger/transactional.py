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
    LedgerTransaction,
    NewNotification,
    Notification,
)
from nextstep.engine.model import Progress, State


class TransactionalStore:
    """The :class:`Store` methods, each over one transaction of the backend."""

    def close(self) -> None:
        """Release the backend's connections."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[LedgerTransaction]:
        """One write transaction (see :meth:`Store.transaction`)."""
        raise NotImplementedError

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
    ) -> list[Notification]:
        """Lease due notifications (see Store)."""
        with self.transaction() as tx:
            return tx.lease_due(now, limit, channels, ids)

    def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        """Apply a batch of attempt results in one transaction."""
        if not results:
            return
        with self.transaction() as tx:
            tx.record_attempts(results)

    def requeue(self, items: Sequence[tuple[int, float]], now: float) -> None:
        """Return leased notifications to the queue without counting an attempt."""
        if not items:
            return
        with self.transaction() as tx:
            tx.requeue(items, now)

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

    # last: a method named ``list`` would shadow the type in the annotations after it
    def list(self, *, state: State | None = None, limit: int = 100) -> list[Notification]:
        """The newest notifications, of one state when given."""
        with self.reading() as tx:
            return tx.list(state=state, limit=limit)
