"""Delivery acks applied to the ledger: one batch in one transaction, the state moving only as
the state machine allows, a ``failed`` ack ending in a retry or a fallback.

Acks come from the channels (a webhook route of a channel that receives acks, or a channel
that looks statuses up); this module does not know where: both feed :func:`apply_acks`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from nextstep.engine.delivery import statemachine
from nextstep.engine.delivery.fallbacks import PolicyContext, failed_ack
from nextstep.engine.delivery.statemachine import ACK_STATUSES
from nextstep.engine.ledger.base import HistoryLine, LedgerTransaction, Move, Store
from nextstep.engine.metrics import ACKS, NOTIFICATIONS
from nextstep.engine.model import Ack, AckReport, OutcomeKind, State
from nextstep.engine.redact import redact_ack

log = logging.getLogger(__name__)
_KINDS = frozenset(kind.value for kind in OutcomeKind)


def _metric_status(status: str) -> str:
    return status if status in ACK_STATUSES else "other"


class _Batch:
    """Accumulates one batch's state moves and history lines, written in order."""

    def __init__(self, tx: LedgerTransaction, now: float) -> None:
        self.tx, self.now = tx, now
        self.moves: list[Move] = []
        self.history: list[HistoryLine] = []

    def flush(self) -> None:
        if self.moves:
            self.tx.set_states(self.moves, self.now)
        if self.history:
            self.tx.add_history(self.history)
        self.moves, self.history = [], []


def apply_acks(
    tx: LedgerTransaction,
    acks: Sequence[Ack],
    now: float,
    ctx: PolicyContext,
    *,
    keep_unknown: bool = True,
    late: bool = False,
) -> AckReport:
    """Apply ``acks`` in order inside the open transaction ``tx``.

    Each ack of a known message becomes a history line; the state moves only as
    :func:`delivery.statemachine.apply` allows. A ``failed`` ack ends the notification through
    :func:`delivery.fallbacks.failed_ack` (retry, or failed plus fallback) in this transaction.
    Acks for unknown ids are kept (``keep_unknown``) and applied once the send is recorded.
    """
    acks = [redact_ack(a) for a in acks]  # provider error texts are stored: made safe first
    tracked = tx.tracked_by_provider([a.provider_id for a in acks])
    states = {t.id: t.state for t in tracked.values()}
    batch = _Batch(tx, now)
    unknown: list[Ack] = []
    moved = 0
    for ack in acks:
        if not late:  # a kept ack was counted when it arrived
            ACKS.labels(_metric_status(ack.status)).inc()
        target = tracked.get(ack.provider_id)
        if target is None:
            unknown.append(ack)
            continue
        current = states[target.id]
        new, changed = statemachine.apply(current, ack.status)
        detail = {**ack.detail(), "applied": changed, **({"late": True} if late else {})}
        batch.history.append((target.id, now, "ack", detail))
        if not changed:
            continue
        moved += 1
        if new is State.FAILED:
            batch.flush()  # the failure reads and writes the row: earlier moves go first
            row = tx.get(target.id)
            if row is not None:
                new = failed_ack(tx, row, ack, now=now, ctx=ctx)
        else:
            batch.moves.append((target.id, current, new))
            NOTIFICATIONS.labels(target.rule_id, new.value).inc()
        states[target.id] = new
    batch.flush()
    if unknown and keep_unknown:
        tx.keep_acks([(a.provider_id, a.status, _payload(a)) for a in unknown], now)
        log.debug("kept %d acks for message ids not (yet) in the ledger", len(unknown))
    return AckReport(len(acks) - len(unknown), moved, len(unknown) if keep_unknown else 0)


def _payload(ack: Ack) -> dict[str, Any]:
    """How a kept ack is stored: its history detail, and the channel's reading of a failure
    (so that it applies later as it would have at once)."""
    doc = {"id": ack.provider_id, **ack.detail()}
    if ack.failure is not None:
        doc["failure"] = ack.failure.value
    return doc


def _from_payload(doc: Mapping[str, Any]) -> Ack:
    code = doc.get("code")
    failure = doc.get("failure")
    return Ack(
        str(doc["id"]),
        str(doc["status"]),
        str(doc.get("error", "")),
        code if isinstance(code, int) else None,
        str(doc.get("source", "webhook")),
        OutcomeKind(failure) if failure in _KINDS else None,
    )


def apply_pending(
    tx: LedgerTransaction,
    now: float,
    ctx: PolicyContext,
    *,
    ids: Sequence[int] | None = None,
    received_since: float = 0.0,
) -> int:
    """Apply kept acks whose message is now recorded (of ``ids``, or received since
    ``received_since``); returns how many were applied."""
    kept = tx.kept_acks_for(ids=ids, received_since=received_since)
    if not kept:
        return 0
    apply_acks(
        tx, [_from_payload(k.payload) for k in kept], now, ctx, keep_unknown=False, late=True
    )
    tx.mark_acks_applied([k.id for k in kept])
    return len(kept)


def record_ack_batches(
    store: Store, batches: Sequence[Sequence[Ack]], now: float, ctx: PolicyContext
) -> list[AckReport]:
    """Apply several batches (several webhook calls) in one transaction, in order; one report
    per batch. One commit for many calls is what keeps the webhook fast under load."""
    with store.transaction() as tx:
        return [apply_acks(tx, acks, now, ctx) if acks else AckReport() for acks in batches]


def record_acks(store: Store, acks: Sequence[Ack], now: float, ctx: PolicyContext) -> AckReport:
    """Apply one batch of acks in one transaction (what the webhook and the poller call)."""
    if not acks:
        return AckReport()
    with store.transaction() as tx:
        return apply_acks(tx, acks, now, ctx)
