"""The policy loop: what becomes due with time alone.

:func:`settle` is the one function both the dispatcher (right after it records attempts, with
their ids) and this loop (for everything, every ``every`` seconds) call. In one transaction it

- applies kept acks whose message has now been recorded (an ack that beat the send record);
- moves retries the dispatcher scheduled into a closed send window to its opening (the
  retries of ``ids``, or the loop's: those due within ``lookahead``);
- expires queued notifications past ``valid_for`` and sent ones past ``within`` that did not
  reach their ``expect``;
- decides the fallback of every failed or expired notification not yet settled (failures the
  dispatcher recorded, expiries the lease made), so none is missed across crashes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nextstep.engine.clock import Clock
from nextstep.engine.delivery.acks import apply_pending
from nextstep.engine.delivery.fallbacks import PolicyContext, finish, hold_for_window
from nextstep.engine.delivery.fallbacks import settle as settle_one
from nextstep.engine.delivery.policy import Failure, expiry_reason
from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.base import AttemptResult, LedgerTransaction, Notification, Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """How often the loop runs, how much one transaction handles, and how old a kept ack may
    be for the loop to still match it against newly recorded sends (the dispatcher's hook
    matches the sends it records whatever the age)."""

    every: float = 1.0
    lookahead: float = 5.0  # retries due this soon are checked against their send window
    batch: int = 500
    pending_window: float = 900.0


@dataclass(frozen=True, slots=True)
class SettleReport:
    """What one :func:`settle` call did."""

    acks: int = 0
    expired: int = 0
    settled: int = 0

    @property
    def busy(self) -> bool:
        """True when anything was done (the loop goes again at once while so)."""
        return bool(self.acks or self.expired or self.settled)


def _expire(tx: LedgerTransaction, n: Notification, now: float, ctx: PolicyContext) -> bool:
    reason = expiry_reason(
        n.state, expect=n.expect, deadline=n.deadline_at, valid_until=n.valid_until, now=now
    )
    if reason is None:
        return False
    failure = Failure("expired", reason, None, n.attempts, None)
    finish(tx, n, State.EXPIRED, failure, now, ctx)
    return True


def _failure_of(n: Notification, code: int | None) -> Failure:
    failed = n.state is State.FAILED
    return Failure(n.state.value, n.reason, code, n.attempts, n.failure_class if failed else None)


def settle(
    store: Store,
    now: float,
    ctx: PolicyContext,
    *,
    ids: Sequence[int] | None = None,
    settings: TimerSettings = TimerSettings(),
) -> SettleReport:
    """Apply what is due at ``now`` (see the module docstring), for ``ids`` only when given."""
    if ids is not None and not ids:
        return SettleReport()
    with store.transaction() as tx:
        acks = apply_pending(tx, now, ctx, ids=ids, received_since=now - settings.pending_window)
        if ids is None:
            retries = tx.retries_due(now + settings.lookahead, settings.batch)
            late = [*tx.stale_queued(now, settings.batch)]
            late += tx.overdue(now, settings.batch)
        else:
            retries, late = tx.retries_among(ids), []
        for row in retries:
            hold_for_window(tx, row, now, ctx)
        expired = sum(_expire(tx, row, now, ctx) for row in late)
        pending = tx.unsettled(ids=ids, limit=settings.batch)
        for row in pending:
            settle_one(tx, row, _failure_of(row, tx.last_code(row.id)), now, ctx)
    return SettleReport(acks, expired, len(pending))


def after_attempts(
    ctx: PolicyContext, settings: TimerSettings = TimerSettings()
) -> Callable[[Store, Sequence[AttemptResult], float], None]:
    """The dispatcher's hook (``Dispatcher(after_write=…)``): :func:`settle` the notifications
    whose attempts were just recorded. It never raises: the batch is already written, and
    whatever this run misses the policy loop does next."""

    def hook(store: Store, results: Sequence[AttemptResult], now: float) -> None:
        ids = [r.notification_id for r in results]
        try:
            settle(store, now, ctx, ids=ids, settings=settings)
        except Exception:  # noqa: BLE001 - a failure here must not undo the recorded sends
            log.exception("settling %d recorded attempts failed; the policy loop retries", len(ids))

    return hook


async def run_timers(
    runner: LedgerRunner,
    clock: Clock,
    ctx: PolicyContext,
    settings: TimerSettings = TimerSettings(),
) -> None:
    """Run :func:`settle` every ``settings.every`` seconds until cancelled; while a run finds
    work, the next one starts at once. A ledger error is logged and tried again later."""
    store = runner.store
    while True:
        try:
            report = await runner.call(settle, store, clock.now(), ctx, settings=settings)
        except StoreError as exc:
            log.error("policy loop: %s", exc)
            report = SettleReport()
        await clock.sleep(0.0 if report.busy else settings.every)
