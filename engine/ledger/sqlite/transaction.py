"""The SQLite :class:`LedgerTransaction`: each method by meaning, over the open connection.

The SQL lives in the modules of functions beside it (:mod:`.write`, :mod:`.send`, :mod:`.read`,
:mod:`.status`); this class only names the steps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nextstep.engine.ledger.base import (
    AttemptResult,
    Enqueued,
    HistoryEntry,
    HistoryLine,
    InboundRecord,
    InboundStored,
    KeptAck,
    Move,
    NewInbound,
    NewNotification,
    Notification,
    OptOut,
    OptOutResult,
    PollCandidate,
    Tracked,
)
from nextstep.engine.ledger.leases import Recovered, WorkerRecord
from nextstep.engine.ledger.sqlite import inbound, read, send, status, workers, write
from nextstep.engine.ledger.sqlite import optouts as optout_sql
from nextstep.engine.ledger.sqlite.rows import add_history
from nextstep.engine.model import Progress, State


class SqliteTransaction:
    """A :class:`LedgerTransaction` on the connection of one open SQLite transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for the backend's own modules (the console's reads)."""
        return self._conn

    # -- writing events ------------------------------------------------------------------
    def enqueue(
        self, items: Sequence[NewNotification], progress: Sequence[Progress] = ()
    ) -> list[Enqueued]:
        """Insert notifications (duplicates as skipped rows, and those an opt-out stops as
        skipped: opted out) and save progress (a claimed key first: see ``Progress.claim``)."""
        write.claim_progress(self._conn, progress)
        results = write.enqueue(self._conn, items, progress)
        if results:
            optout_sql.set_scopes(self._conn, items, results)
            results = optout_sql.skip_opted_out(self._conn, items, results)
        return results

    def get_progress(self, key: str) -> str | None:
        """A trigger's saved progress."""
        return write.get_progress(self._conn, key)

    def save_rule_version(self, rule_id: str, version: str, definition: Mapping[str, Any]) -> None:
        """Keep a rule definition (once per version)."""
        write.save_rule_version(self._conn, rule_id, version, definition)

    def get_rule_version(self, rule_id: str, version: str) -> Mapping[str, Any] | None:
        """A kept rule definition."""
        return write.get_rule_version(self._conn, rule_id, version)

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
        """Lease due notifications under ``owner``'s lease, oldest due first."""
        return send.lease_due(self._conn, now, limit, channels, ids, owner, lease_until)

    def requeue(
        self, items: Sequence[tuple[int, float]], now: float, owner: str | None = None
    ) -> None:
        """Give leased notifications back, no attempt counted."""
        send.requeue(self._conn, items, now, owner)

    def mark_sending(self, ids: Sequence[int], now: float, owner: str | None = None) -> list[int]:
        """Mark leased rows about to be sent; the ids still held and now marked."""
        return send.mark_sending(self._conn, ids, now, owner)

    def renew_leases(self, owner: str, until: float) -> int:
        """Extend ``owner``'s leases."""
        return send.renew_leases(self._conn, owner, until)

    def recover(self, now: float, gone: Sequence[str] | None) -> Recovered:
        """Recover expired leases and those of gone owners (see :mod:`ledger.leases`)."""
        return send.recover(self._conn, now, gone)

    def heartbeat(self, worker: WorkerRecord) -> None:
        """Write this worker's row (insert or update)."""
        workers.heartbeat(self._conn, worker)

    def workers(self) -> list[WorkerRecord]:
        """Every worker row, the newest first."""
        return workers.read_workers(self._conn)

    def stop_worker(self, worker_id: str, now: float) -> None:
        """Record that a worker stopped cleanly."""
        workers.stop_worker(self._conn, worker_id, now)

    def next_due(
        self, channels: Sequence[str] | None = None, ids: Sequence[int] | None = None
    ) -> float | None:
        """Earliest due time among queued notifications in scope."""
        return read.next_due(self._conn, channels, ids)

    def record_attempts(self, results: Sequence[AttemptResult], owner: str | None = None) -> None:
        """Apply attempt results with their history lines."""
        send.record_attempts(self._conn, results, owner)

    def recover_interrupted(self, now: float) -> int:
        """Every ``sending`` row: marked ones become ``in_doubt``, the others due again."""
        return len(send.recover(self._conn, now, None).in_doubt)

    # -- reading -------------------------------------------------------------------------
    def get(self, notification_id: int) -> Notification | None:
        """One notification."""
        return read.get(self._conn, notification_id)

    def find(
        self, *, provider_id: str | None = None, dedupe_key: str | None = None
    ) -> list[Notification]:
        """Notifications by provider id and/or dedupe key."""
        return read.find(self._conn, provider_id=provider_id, dedupe_key=dedupe_key)

    def history(self, notification_id: int) -> list[HistoryEntry]:
        """A notification's history, oldest first."""
        return read.history(self._conn, notification_id)

    def counts(
        self, since: float | None = None, rule_id: str | None = None
    ) -> dict[tuple[str, str], int]:
        """Notifications by (rule id, state)."""
        return read.counts(self._conn, since, rule_id)

    def queue_depth(self, now: float) -> int:
        """Queued notifications due at ``now``."""
        return read.queue_depth(self._conn, now)

    # -- deciding in-doubt and cancelling ------------------------------------------------
    def release(self, notification_id: int, now: float) -> bool:
        """An in-doubt notification is queued again."""
        return send.release(self._conn, notification_id, now)

    def cancel(self, notification_id: int, now: float, reason: str = "cancelled") -> bool:
        """Cancel a queued or in-doubt notification."""
        return send.cancel(self._conn, notification_id, now, reason)

    # -- acks -------------------------------------------------------------------------------
    def tracked_by_provider(self, provider_ids: Sequence[str]) -> dict[str, Tracked]:
        """The notification of each provider message id."""
        return status.tracked_by_provider(self._conn, provider_ids)

    def set_states(self, moves: Sequence[Move], now: float) -> None:
        """Compare-and-set state moves."""
        status.set_states(self._conn, moves, now)

    def add_history(self, lines: Iterable[HistoryLine]) -> None:
        """Append history lines."""
        add_history(self._conn, lines)

    def keep_acks(self, acks: Sequence[tuple[str, str, Mapping[str, Any]]], now: float) -> None:
        """Keep acks of unknown message ids."""
        status.keep_pending(self._conn, acks, now)

    def kept_acks_for(self, *, ids: Sequence[int] | None, received_since: float) -> list[KeptAck]:
        """Kept acks whose message is now recorded."""
        return status.pending_for(self._conn, ids=ids, received_since=received_since)

    def mark_acks_applied(self, ack_ids: Sequence[int]) -> None:
        """Kept acks now applied."""
        status.mark_applied(self._conn, ack_ids)

    def kept_ack_count(self) -> int:
        """Kept acks not applied (yet)."""
        return status.kept_count(self._conn)

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
        """Terminal state and settled, if still in ``old``."""
        return status.conclude(
            self._conn,
            notification_id,
            old=old,
            new=new,
            reason=reason,
            failure_class=failure_class,
            now=now,
        )

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
        """Queued again at ``due``, if still in ``old``."""
        return status.retry_later(
            self._conn,
            notification_id,
            old=old,
            due=due,
            reason=reason,
            failure_class=failure_class,
            now=now,
        )

    def reschedule(self, notification_id: int, due: float) -> bool:
        """A queued notification's next attempt moves to ``due``."""
        return status.reschedule(self._conn, notification_id, due)

    def mark_settled(self, notification_id: int, now: float) -> bool:
        """Claim deciding the fallback (once)."""
        return status.mark_settled(self._conn, notification_id, now)

    def last_code(self, notification_id: int) -> int | None:
        """The provider's last error code."""
        return status.last_code(self._conn, notification_id)

    # -- what becomes due with time -----------------------------------------------------------
    def stale_queued(self, now: float, limit: int) -> list[Notification]:
        """Queued past ``valid_until``."""
        return status.stale_queued(self._conn, now, limit)

    def overdue(self, now: float, limit: int) -> list[Notification]:
        """Past the ``within`` deadline without the expected status."""
        return status.overdue(self._conn, now, limit)

    def unsettled(self, *, ids: Sequence[int] | None, limit: int) -> list[Notification]:
        """Failed or expired, fallback not decided."""
        return status.unsettled(self._conn, ids=ids, limit=limit)

    def retries_among(self, ids: Sequence[int]) -> list[Notification]:
        """Retries waiting among ``ids``."""
        return status.retries_among(self._conn, ids)

    def retries_due(self, until: float, limit: int) -> list[Notification]:
        """Retries due by ``until``."""
        return status.retries_due(self._conn, until, limit)

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
        """Silent sent messages to ask about."""
        return status.poll_candidates(
            self._conn,
            channels=channels,
            silent_since=silent_since,
            polled_before=polled_before,
            oldest=oldest,
            limit=limit,
        )

    def mark_polled(self, ids: Sequence[int], now: float) -> None:
        """Remember when these were asked about."""
        status.mark_polled(self._conn, ids, now)

    def resolve_in_doubt(
        self, notification_id: int, now: float, provider_id: str | None, detail: Mapping[str, Any]
    ) -> bool:
        """``sent`` with ``provider_id`` (found), or ``queued`` again (None), if in doubt."""
        return status.resolve_in_doubt(self._conn, notification_id, now, provider_id, detail)

    # -- opt-outs and inbound messages --------------------------------------------------------
    def add_optouts(self, entries: Sequence[OptOut]) -> OptOutResult:
        """Keep opt-outs; skip the queued notifications they stop."""
        return optout_sql.add_optouts(self._conn, entries)

    def remove_optouts(self, keys: Sequence[tuple[str, str]]) -> int:
        """Remove opt-outs ``(recipient, channel)``."""
        return optout_sql.remove_optouts(self._conn, keys)

    def optouts(
        self, *, recipients: Sequence[str] | None = None, limit: int | None = None
    ) -> list[OptOut]:
        """The opt-outs kept."""
        return optout_sql.optouts(self._conn, recipients, limit)

    def record_inbound(self, items: Sequence[NewInbound]) -> list[InboundStored | None]:
        """Keep inbound messages once; apply what new ones ask."""
        return inbound.record_inbound(self._conn, items)

    def inbound_after(
        self, after_id: int, *, channels: Sequence[str] | None = None, limit: int = 100
    ) -> list[InboundRecord]:
        """Kept inbound messages after ``after_id``."""
        return inbound.inbound_after(self._conn, after_id, channels, limit)

    def last_inbound_id(self) -> int:
        """The newest inbound message's id."""
        return inbound.last_inbound_id(self._conn)

    def prune_inbound(self, before: float) -> int:
        """Forget inbound messages received before ``before``."""
        return inbound.prune_inbound(self._conn, before)

    # last: a method named ``list`` would shadow the type in the annotations after it
    def list(self, *, state: State | None = None, limit: int = 100) -> list[Notification]:
        """The newest notifications."""
        return read.list_notifications(self._conn, state, limit)
