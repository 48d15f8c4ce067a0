"""The store interface every ledger backend implements (SQLite now, PostgreSQL next).

All methods are synchronous and each one is one transaction; async callers run them in the
ledger's own worker thread (see :class:`nextstep.engine.ledger.runner.LedgerRunner`). Times are Unix
seconds from the injected clock, passed in by the caller: a store never reads the time itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nextstep.engine.model import Progress, State


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A notification to write; ``dedupe_key`` is UNIQUE per ``rule_id``."""

    rule_id: str
    rule_version: str
    channel: str
    recipient: str
    fields: Mapping[str, Any]  # Message.fields
    event: Mapping[str, Any]  # the event data, kept to render retries and fallbacks
    created_at: float
    dedupe_key: str | None = None
    not_before: float | None = None  # send_window deferral: not sent before this time
    valid_until: float | None = None  # valid_for: expired if not sent by then
    expect: str = "sent"  # sent | delivered | read
    within: float | None = None  # seconds after acceptance to reach `expect`
    supersede_key: str | None = None
    parent_id: int | None = None  # a fallback's parent notification
    fallback_step: int | None = None  # index in the parent rule's fallback chain
    trigger: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """Result of enqueueing one NewNotification."""

    id: int
    state: State  # queued, or skipped when it duplicates ``duplicate_of``
    duplicate_of: int | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A ledger row."""

    id: int
    rule_id: str
    rule_version: str
    channel: str
    recipient: str
    fields: Mapping[str, Any]
    event: Mapping[str, Any]
    state: State
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    dedupe_key: str | None
    provider_id: str | None
    expect: str
    within: float | None
    deadline_at: float | None
    valid_until: float | None
    supersede_key: str | None
    parent_id: int | None
    fallback_step: int | None
    reason: str  # the last failure or skip reason
    failure_class: str | None  # OutcomeKind value of the last failure
    trigger: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a notification's history: an attempt, an ack, a state change."""

    notification_id: int
    at: float
    kind: str  # created | attempt | ack | state | fallback | note
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What the dispatcher decided after one send attempt of a leased notification."""

    notification_id: int
    at: float
    state: State  # queued (retry), sent, failed, in_doubt
    outcome: Mapping[str, Any]  # the Outcome as a dict, kept in history
    next_attempt_at: float | None = None
    provider_id: str | None = None
    reason: str = ""
    failure_class: str | None = None
    attempt: int = 0  # this attempt's number (1 = the first), kept in the history line
    counts: bool = True  # False: not held against the retry budget (an account failure)


class Store(Protocol):
    """A ledger backend."""

    def close(self) -> None:
        """Release the backend's connections."""
        ...

    # -- writing events ------------------------------------------------------------------
    def enqueue(
        self, items: Sequence[NewNotification], progress: Sequence[Progress] = ()
    ) -> list[Enqueued]:
        """Write notifications and trigger progress in one transaction.

        A duplicate (same rule and dedupe key) is written as ``skipped`` with reason
        ``duplicate of #N``. A new notification with a ``supersede_key`` cancels older ones of
        its rule with that key that are still queued (state ``superseded``).
        """
        ...

    def get_progress(self, key: str) -> str | None:
        """A trigger's last committed progress value, None when it has none."""
        ...

    def save_rule_version(self, rule_id: str, version: str, definition: Mapping[str, Any]) -> None:
        """Keep a rule's definition by version so retries and fallbacks render with it."""
        ...

    def get_rule_version(self, rule_id: str, version: str) -> Mapping[str, Any] | None:
        """A kept rule definition, None when that version is unknown."""
        ...

    # -- dispatching ---------------------------------------------------------------------
    def lease_due(
        self,
        now: float,
        limit: int,
        channels: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Notification]:
        """Move up to ``limit`` due queued notifications to ``sending`` and return them, oldest
        due first, only of ``channels`` / ``ids`` when given. Queued rows whose
        ``valid_until`` has passed become ``expired`` instead."""
        ...

    def requeue(self, items: Sequence[tuple[int, float]], now: float) -> None:
        """Give leased (``sending``) notifications back: ``queued`` again, due at the paired
        time, without counting an attempt (nothing was sent)."""
        ...

    def next_due(
        self, channels: Sequence[str] | None = None, ids: Sequence[int] | None = None
    ) -> float | None:
        """The earliest ``next_attempt_at`` among queued notifications, None when none."""
        ...

    def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        """Apply a batch of attempt results (one transaction), each with its history line."""
        ...

    def recover_interrupted(self, now: float) -> int:
        """After a crash: rows left in ``sending`` may have reached the provider, so they become
        ``in_doubt`` (never resent automatically). Returns how many."""
        ...

    # -- reading -------------------------------------------------------------------------
    def get(self, notification_id: int) -> Notification | None:
        """One notification, None when unknown."""
        ...

    def find(
        self, *, provider_id: str | None = None, dedupe_key: str | None = None
    ) -> list[Notification]:
        """Notifications with this provider message id and/or dedupe key."""
        ...

    def history(self, notification_id: int) -> list[HistoryEntry]:
        """Every history line of one notification, oldest first."""
        ...

    def counts(
        self, since: float | None = None, rule_id: str | None = None
    ) -> dict[tuple[str, str], int]:
        """Number of notifications by (rule id, state) created since ``since``."""
        ...

    def list(self, *, state: State | None = None, limit: int = 100) -> list[Notification]:
        """The newest notifications, of one state when given."""
        ...

    def queue_depth(self, now: float) -> int:
        """How many queued notifications are due at ``now``."""
        ...

    # -- deciding in-doubt and cancelling ------------------------------------------------
    def release(self, notification_id: int, now: float) -> bool:
        """An in-doubt notification is queued again (the operator says: send it)."""
        ...

    def cancel(self, notification_id: int, now: float, reason: str = "cancelled") -> bool:
        """Cancel a queued or in-doubt notification; False when it is in another state."""
        ...
