"""Ask channels about messages no ack has moved (channels with the ``LooksUpStatus`` ability).

A message whose expectation is not met ``poll_after`` seconds after its last change (still
only ``sent``; or ``delivered`` when its rule expects ``read``, whose read ack may have been
lost: issue 15.5) is asked about, then
again every ``poll_every`` seconds, until an ack (or an answer) moves it, it expires, or it is
older than ``max_age``. The answers go through the same ledger function as webhook acks
(:func:`nextstep.engine.delivery.acks.apply_acks`), so duplicates and old statuses are harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nextstep.engine.clock import Clock
from nextstep.engine.delivery.acks import apply_acks
from nextstep.engine.delivery.fallbacks import PolicyContext
from nextstep.engine.errors import DeliveryError, StoreError
from nextstep.engine.ledger.base import PollCandidate, Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Ack, AckReport
from nextstep.engine.plugins import LooksUpStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollSettings:
    """``status.poll_after`` / ``status.poll_every`` of ``nextstep.yaml`` and the loop's own
    bounds (how old a message may be, how many per round, how many requests at once)."""

    poll_after: float = 300.0
    poll_every: float = 60.0
    max_age: float = 7 * 86400.0
    batch: int = 100
    concurrency: int = 8
    tick: float = 5.0


def _candidates(
    store: Store, now: float, channels: Sequence[str], settings: PollSettings
) -> list[PollCandidate]:
    with store.transaction() as tx:
        found = tx.poll_candidates(
            channels=channels,
            silent_since=now - settings.poll_after,
            polled_before=now - settings.poll_every,
            oldest=now - settings.max_age,
            limit=settings.batch,
        )
        # Claimed in the same transaction: several workers never ask about one message at once.
        tx.mark_polled([c.id for c in found], now)
        return found


def _record(
    store: Store, acks: Sequence[Ack], ids: Sequence[int], now: float, ctx: PolicyContext
) -> AckReport:
    with store.transaction() as tx:
        report = apply_acks(tx, acks, now, ctx, keep_unknown=False)
        tx.mark_polled(ids, now)
        return report


async def _ask(channel: LooksUpStatus, message_id: str, gate: asyncio.Semaphore) -> list[Ack]:
    async with gate:
        try:
            return await channel.lookup_status(message_id)
        except DeliveryError as exc:
            log.info("a status lookup failed: %s", exc)
            return []


async def poll_once(
    runner: LedgerRunner,
    channels: Mapping[str, LooksUpStatus],
    clock: Clock,
    ctx: PolicyContext,
    settings: PollSettings = PollSettings(),
) -> int:
    """One round: ask about every due message (at most ``batch``); returns how many."""
    store = runner.store
    due = await runner.call(_candidates, store, clock.now(), list(channels), settings)
    if not due:
        return 0
    gate = asyncio.Semaphore(settings.concurrency)
    answers = await asyncio.gather(*(_ask(channels[c.channel], c.provider_id, gate) for c in due))
    acks = [ack for answer in answers for ack in answer]
    await runner.call(_record, store, acks, [c.id for c in due], clock.now(), ctx)
    return len(due)


async def run_poller(
    runner: LedgerRunner,
    channels: Mapping[str, LooksUpStatus],
    clock: Clock,
    ctx: PolicyContext,
    settings: PollSettings = PollSettings(),
) -> None:
    """Poll every ``settings.tick`` seconds until cancelled (at once again after a full round)."""
    while True:
        try:
            asked = await poll_once(runner, channels, clock, ctx, settings)
        except StoreError as exc:
            log.error("status poller: %s", exc)
            asked = 0
        await clock.sleep(0.0 if asked >= settings.batch else settings.tick)
