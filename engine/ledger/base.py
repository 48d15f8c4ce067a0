"""The interfaces every ledger backend implements (SQLite, PostgreSQL): :class:`Store` and the
unit of work it opens, :class:`LedgerTransaction`.

All methods are synchronous. Each :class:`Store` method is one transaction; work that must be
atomic across several steps (apply acks, conclude a notification and enqueue its fallback) runs
in ``with store.transaction() as tx:`` and calls ``tx`` methods, named by meaning: no caller
outside a backend sees SQL, a connection or a driver. Async callers run both in the ledger's own
worker thread (see :class:`nextstep.engine.ledger.runner.LedgerRunner`). Times are Unix seconds
from the injected clock, passed in by the caller: a store never reads the time itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from nextstep.engine.ledger.leases import Recovered, SourceLock, WorkerRecord
from nextstep.engine.model import InboundMessage, Progress, State

# A history line: (notification id, at, kind, detail).
HistoryLine = tuple[int, float, str, Mapping[str, Any]]
# A state move: (notification id, from, to); a row no longer in ``from`` is left alone.
Move = tuple[int, State, State]


OPTED_OUT = "opted out"
"""The reason of a notification skipped because its recipient opted out of its channel."""


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
    # The opt-outs that stop it, by channel (a channel name, or ALL_CHANNELS): None is the
    # default, its own channel's and every-channel opt-outs; () is none (not a message to the
    # recipient, such as a CRM task).
    optout: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """Result of enqueueing one NewNotification."""

    id: int
    state: State  # queued, or skipped: it duplicates ``duplicate_of``, or ``reason`` says why
    duplicate_of: int | None = None
    reason: str = ""  # of a skip that is not a duplicate: OPTED_OUT


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


@dataclass(frozen=True, slots=True)
class Tracked:
    """The few columns an ack needs to move a notification."""

    id: int
    provider_id: str
    state: State
    rule_id: str


@dataclass(frozen=True, slots=True)
class KeptAck:
    """An ack kept for a message id no notification had when it arrived."""

    id: int
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PollCandidate:
    """A message whose expected status has not come (sent, or delivered awaiting read), to ask
    its channel about."""

    id: int
    channel: str
    provider_id: str


@dataclass(frozen=True, slots=True)
class OptOut:
    """A recipient (international digits) who asked not to be sent messages through
    ``channel`` (a channel name, or ALL_CHANNELS), since ``at``; ``how`` it was asked
    (keyword, cli, api, import) and a ``note`` (the words they used, who recorded it)."""

    recipient: str
    channel: str
    at: float
    how: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class OptOutResult:
    """What adding opt-outs did: new ones, ones already there (left as they were), and the
    queued notifications they stopped, as ``(id, rule id)``, now skipped (opted out)."""

    added: int = 0
    already: int = 0
    skipped: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NewInbound:
    """An inbound message to keep, with what it asks: ``optout`` is added and the sender's
    opt-outs of the channels in ``lift`` are removed, only when the message is new (a provider
    retry changes nothing). ``keyword`` (stop, start) is kept with it."""

    channel: str
    message: InboundMessage
    received_at: float
    keyword: str | None = None
    optout: OptOut | None = None
    lift: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """The notification an inbound message replied to (quoted)."""

    id: int
    rule_id: str
    dedupe_key: str | None
    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """A kept inbound message; ids grow in the order messages were committed."""

    id: int
    channel: str
    provider_id: str
    sender: str
    name: str
    type: str
    text: str
    sent_at: float
    received_at: float
    quoted_id: str | None
    keyword: str | None
    reply_to: ReplyTarget | None


@dataclass(frozen=True, slots=True)
class InboundStored:
    """What keeping one new inbound message did: its id, the notification it replied to, the
    opt-out it added and how many opt-outs it lifted."""

    id: int
    reply_to: int | None = None
    optout: OptOutResult | None = None
    lifted: int = 0


class LedgerTransaction(Protocol):
    """One open transaction of a backend: ``with store.transaction() as tx:``. Everything done
    through ``tx`` commits together when the block ends, or not at all when it raises.

    It has the :class:`Store`'s methods (each then part of this transaction) and the steps the
    status tracker and the policies are made of.
    """

    # -- writing events (as Store) ----------------------------------------------------------
    def enqueue(
        self, items: Sequence[NewNotification], progress: Sequence[Progress] = ()
    ) -> list[Enqueued]:
        """:meth:`Store.enqueue` inside this transaction (a fallback with its parent's end)."""
        ...

    def get_progress(self, key: str) -> str | None:
        """:meth:`Store.get_progress`."""
        ...

    def save_rule_version(self, rule_id: str, version: str, definition: Mapping[str, Any]) -> None:
        """:meth:`Store.save_rule_version`."""
        ...

    def get_rule_version(self, rule_id: str, version: str) -> Mapping[str, Any] | None:
        """:meth:`Store.get_rule_version`."""
        ...

    # -- dispatching (as Store) -------------------------------------------------------------
    def lease_due(
        self,
        now: float,
        limit: int,
        channels: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> list[Notification]:
        """:meth:`Store.lease_due`."""
        ...

    def requeue(
        self, items: Sequence[tuple[int, float]], now: float, owner: str | None = None
    ) -> None:
        """:meth:`Store.requeue`."""
        ...

    def mark_sending(self, ids: Sequence[int], now: float, owner: str | None = None) -> list[int]:
        """:meth:`Store.mark_sending`."""
        ...

    def renew_leases(self, owner: str, until: float) -> int:
        """:meth:`Store.renew_leases`."""
        ...

    def recover(self, now: float, gone: Sequence[str] | None) -> Recovered:
        """:meth:`Store.recover`."""
        ...

    def heartbeat(self, worker: WorkerRecord) -> None:
        """:meth:`Store.heartbeat`."""
        ...

    def workers(self) -> list[WorkerRecord]:
        """:meth:`Store.workers`."""
        ...

    def stop_worker(self, worker_id: str, now: float) -> None:
        """:meth:`Store.stop_worker`."""
        ...

    def next_due(
        self, channels: Sequence[str] | None = None, ids: Sequence[int] | None = None
    ) -> float | None:
        """:meth:`Store.next_due`."""
        ...

    def record_attempts(self, results: Sequence[AttemptResult], owner: str | None = None) -> None:
        """:meth:`Store.record_attempts`."""
        ...

    def recover_interrupted(self, now: float) -> int:
        """:meth:`Store.recover_interrupted`."""
        ...

    # -- reading (as Store) -----------------------------------------------------------------
    def get(self, notification_id: int) -> Notification | None:
        """:meth:`Store.get`."""
        ...

    def find(
        self, *, provider_id: str | None = None, dedupe_key: str | None = None
    ) -> list[Notification]:
        """:meth:`Store.find`."""
        ...

    def history(self, notification_id: int) -> list[HistoryEntry]:
        """:meth:`Store.history`."""
        ...

    def counts(
        self, since: float | None = None, rule_id: str | None = None
    ) -> dict[tuple[str, str], int]:
        """:meth:`Store.counts`."""
        ...

    def queue_depth(self, now: float) -> int:
        """:meth:`Store.queue_depth`."""
        ...

    # -- deciding in-doubt and cancelling (as Store) ----------------------------------------
    def release(self, notification_id: int, now: float) -> bool:
        """:meth:`Store.release`."""
        ...

    def cancel(self, notification_id: int, now: float, reason: str = "cancelled") -> bool:
        """:meth:`Store.cancel`."""
        ...

    # -- acks -------------------------------------------------------------------------------
    def tracked_by_provider(self, provider_ids: Sequence[str]) -> dict[str, Tracked]:
        """The notification each provider message id belongs to (the newest, should two share
        it); ids no notification has are left out."""
        ...

    def set_states(self, moves: Sequence[Move], now: float) -> None:
        """Move notifications ``(id, from, to)``; a row no longer in ``from`` is left alone."""
        ...

    def add_history(self, lines: Iterable[HistoryLine]) -> None:
        """Append history lines ``(notification_id, at, kind, detail)``, in order."""
        ...

    def keep_acks(self, acks: Sequence[tuple[str, str, Mapping[str, Any]]], now: float) -> None:
        """Keep acks ``(provider_id, status, payload)`` for ids no notification has (yet); they
        are applied once the send is recorded."""
        ...

    def kept_acks_for(self, *, ids: Sequence[int] | None, received_since: float) -> list[KeptAck]:
        """Kept acks, not yet applied, whose notification now has their provider id, oldest
        first: of the notifications ``ids``, or else those received since ``received_since``
        (old acks that will never match, another system's messages, cost nothing)."""
        ...

    def mark_acks_applied(self, ack_ids: Sequence[int]) -> None:
        """Kept acks that have now been applied to their notification."""
        ...

    def kept_ack_count(self) -> int:
        """How many kept acks are not applied (yet)."""
        ...

    # -- ending, retrying, settling ---------------------------------------------------------
    def conclude(
        self,
        notification_id: int,
        *,
        old: State,
        new: State,
        reason: str,
        failure_class: str | None,
        now: float,
    ) -> bool:
        """Move a notification from ``old`` to the terminal ``new`` and mark it settled; False
        when it was no longer in ``old`` (something else moved it first)."""
        ...

    def retry_later(
        self,
        notification_id: int,
        *,
        old: State,
        due: float,
        reason: str,
        failure_class: str,
        now: float,
    ) -> bool:
        """Queue a notification (still in ``old``) again, due at ``due``; False when it moved."""
        ...

    def reschedule(self, notification_id: int, due: float) -> bool:
        """Move a queued notification's next attempt to ``due``; False when not queued."""
        ...

    def mark_settled(self, notification_id: int, now: float) -> bool:
        """Claim deciding a failed or expired notification's fallback: True once, for the one
        caller that marks it first."""
        ...

    def last_code(self, notification_id: int) -> int | None:
        """The provider's error code in the notification's last attempt or ack, if it had one."""
        ...

    # -- what becomes due with time -----------------------------------------------------------
    def stale_queued(self, now: float, limit: int) -> list[Notification]:
        """Queued notifications whose ``valid_until`` has passed (not yet expired by a lease)."""
        ...

    def overdue(self, now: float, limit: int) -> list[Notification]:
        """Sent or delivered notifications past their ``within`` deadline that expected more."""
        ...

    def unsettled(self, *, ids: Sequence[int] | None, limit: int) -> list[Notification]:
        """Failed or expired notifications whose fallback has not been decided (of ``ids``)."""
        ...

    def retries_among(self, ids: Sequence[int]) -> list[Notification]:
        """Those of ``ids`` queued again after a failed attempt (a retry waiting for its time)."""
        ...

    def retries_due(self, until: float, limit: int) -> list[Notification]:
        """Retries (queued after a failed attempt) due by ``until``, soonest first."""
        ...

    # -- asking channels about silent messages ----------------------------------------------
    def poll_candidates(
        self,
        *,
        channels: Sequence[str],
        silent_since: float,
        polled_before: float,
        oldest: float,
        limit: int,
    ) -> list[PollCandidate]:
        """Messages of ``channels`` still only ``sent`` (or ``delivered`` when ``read`` is
        expected) since ``silent_since`` (accepted after
        ``oldest``), not asked about since ``polled_before``; least recently asked first."""
        ...

    def mark_polled(self, ids: Sequence[int], now: float) -> None:
        """Remember when these notifications were last asked about."""
        ...

    def resolve_in_doubt(
        self, notification_id: int, now: float, provider_id: str | None, detail: Mapping[str, Any]
    ) -> bool:
        """An in-doubt notification settled by the provider's history: ``sent`` with
        ``provider_id`` (its ``within`` deadline counted from ``now``), or, with None, ``queued``
        again and due now; a ``state`` history line with ``detail``. False when it is no
        longer in doubt (an operator decided first)."""
        ...

    # -- opt-outs and inbound messages --------------------------------------------------------
    def add_optouts(self, entries: Sequence[OptOut]) -> OptOutResult:
        """:meth:`Store.add_optouts` (on PostgreSQL, call the Store's: it takes the opt-out
        lock before anything else)."""
        ...

    def remove_optouts(self, keys: Sequence[tuple[str, str]]) -> int:
        """:meth:`Store.remove_optouts`."""
        ...

    def optouts(
        self, *, recipients: Sequence[str] | None = None, limit: int | None = None
    ) -> list[OptOut]:
        """:meth:`Store.optouts`."""
        ...

    def record_inbound(self, items: Sequence[NewInbound]) -> list[InboundStored | None]:
        """:meth:`Store.record_inbound` (on PostgreSQL, call the Store's)."""
        ...

    def inbound_after(
        self, after_id: int, *, channels: Sequence[str] | None = None, limit: int = 100
    ) -> list[InboundRecord]:
        """:meth:`Store.inbound_after`."""
        ...

    def last_inbound_id(self) -> int:
        """:meth:`Store.last_inbound_id`."""
        ...

    def prune_inbound(self, before: float) -> int:
        """:meth:`Store.prune_inbound`."""
        ...

    # last: a method named ``list`` would shadow the type in the annotations after it
    def list(self, *, state: State | None = None, limit: int = 100) -> list[Notification]:
        """:meth:`Store.list`."""
        ...


class Store(Protocol):
    """A ledger backend."""

    def close(self) -> None:
        """Release the backend's connections."""
        ...

    def transaction(self) -> AbstractContextManager[LedgerTransaction]:
        """One unit of work: ``with store.transaction() as tx: …`` commits when the block
        ends and rolls back when it raises; the backend's errors become StoreError."""
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
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> list[Notification]:
        """Move up to ``limit`` due queued notifications to ``sending`` and return them, oldest
        due first, only of ``channels`` / ``ids`` when given, leased by ``owner`` until
        ``lease_until`` (renewed with :meth:`renew_leases`). Queued rows whose
        ``valid_until`` has passed become ``expired`` instead."""
        ...

    def requeue(
        self, items: Sequence[tuple[int, float]], now: float, owner: str | None = None
    ) -> None:
        """Give leased (``sending``) notifications back: ``queued`` again, due at the paired
        time, without counting an attempt (nothing was sent); with ``owner``, only rows it
        still holds."""
        ...

    def mark_sending(self, ids: Sequence[int], now: float, owner: str | None = None) -> list[int]:
        """Mark leased rows whose request is about to be written (``owner``'s only, when
        given) and return the ids marked: only a marked row may be sent, and only a marked
        row becomes in doubt when its worker dies."""
        ...

    def claim_recipients(
        self, claims: Sequence[tuple[str, str, float]], now: float
    ) -> dict[tuple[str, str], float]:
        """Claim each ``(channel, recipient, spacing)`` slot at ``now`` for every worker
        together (the pair rate); the refused ones with the time to try again."""
        ...

    def renew_leases(self, owner: str, until: float) -> int:
        """Extend every lease ``owner`` holds to ``until``; returns how many rows it holds."""
        ...

    def recover(self, now: float, gone: Sequence[str] | None = None) -> Recovered:
        """Rows left ``sending`` whose lease ran out by ``now`` or whose owner is in ``gone``
        (None: every one): marked rows become ``in_doubt``, the others are due again."""
        ...

    def heartbeat(self, worker: WorkerRecord) -> None:
        """Insert or refresh a worker's row (``last_seen``, what it holds)."""
        ...

    def workers(self) -> list[WorkerRecord]:
        """Every worker row, the most recently seen first."""
        ...

    def stop_worker(self, worker_id: str, now: float) -> None:
        """Record that a worker stopped cleanly (it holds nothing)."""
        ...

    def source_lock(self, name: str) -> SourceLock:
        """The lock of trigger source ``name``, for reading it on one worker at a time (not
        taken yet: :meth:`SourceLock.acquire`)."""
        ...

    def next_due(
        self, channels: Sequence[str] | None = None, ids: Sequence[int] | None = None
    ) -> float | None:
        """The earliest ``next_attempt_at`` among queued notifications, None when none."""
        ...

    def record_attempts(self, results: Sequence[AttemptResult], owner: str | None = None) -> None:
        """Apply a batch of attempt results (one transaction), each with its history line;
        with ``owner``, only to rows it still holds."""
        ...

    def recover_interrupted(self, now: float) -> int:
        """Every row left in ``sending``: marked ones may have reached the provider, so they
        become ``in_doubt`` (never resent automatically); the others are due again. Returns
        how many are in doubt. (A worker recovers with :meth:`recover`.)"""
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

    # -- opt-outs and inbound messages --------------------------------------------------
    def add_optouts(self, entries: Sequence[OptOut]) -> OptOutResult:
        """Keep opt-outs (one per recipient and channel: one already kept is left as it was)
        and, in the same transaction, skip (reason ``opted out``) every queued notification
        they stop: first attempts, retries waiting for their time, fallbacks not yet sent.
        From the commit on, no notification they stop is queued: ``enqueue`` writes it
        skipped, and one going back to ``queued`` (a retry, a release) is skipped instead."""
        ...

    def remove_optouts(self, keys: Sequence[tuple[str, str]]) -> int:
        """Remove the opt-outs ``(recipient, channel)``; returns how many there were."""
        ...

    def optouts(
        self, *, recipients: Sequence[str] | None = None, limit: int | None = None
    ) -> list[OptOut]:
        """The opt-outs kept (of ``recipients`` when given), by recipient and channel."""
        ...

    def record_inbound(self, items: Sequence[NewInbound]) -> list[InboundStored | None]:
        """Keep inbound messages, one per channel and provider id (None for one already
        kept), each with the notification it replied to, and apply what new ones ask
        (``optout``, ``lift``) in the same transaction."""
        ...

    def inbound_after(
        self, after_id: int, *, channels: Sequence[str] | None = None, limit: int = 100
    ) -> list[InboundRecord]:
        """Kept inbound messages with an id above ``after_id`` (of ``channels``), oldest
        first. Ids are given in commit order, so a reader that remembers the last id it saw
        never misses one."""
        ...

    def last_inbound_id(self) -> int:
        """The id of the newest inbound message kept (0 when none)."""
        ...

    def prune_inbound(self, before: float) -> int:
        """Forget inbound messages received before ``before``; returns how many."""
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
