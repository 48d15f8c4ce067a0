"""Shared pieces of the dispatcher tests: a ledger, a dispatcher over a fake channel, a clock
driver."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger.base import NewNotification, Notification
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Outcome, OutcomeKind
from nextstep.engine.plugins import Channel
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.dispatcher import Dispatcher
from nextstep.engine.sending.ratelimit import ChannelLimits

TRANSIENT = Outcome(OutcomeKind.TRANSIENT, reason="HTTP 503", http_status=503)
IN_DOUBT = Outcome(OutcomeKind.IN_DOUBT, reason="read timeout")
QUIET_YIELDS = 5  # loop turns with no ledger call before the loop counts as waiting

ACCOUNT = Outcome(OutcomeKind.ACCOUNT, reason="HTTP 401: wrong token", http_status=401)


def dispatcher(
    runner: LedgerRunner,
    clock: FakeClock,
    channel: Channel,
    policy: RetryPolicy | None = None,
    limits: ChannelLimits | None = None,
    **options: object,
) -> Dispatcher:
    """A dispatcher over one fake channel named like it, with a seeded random source."""
    chosen = policy or RetryPolicy()
    return Dispatcher(
        runner,
        {channel.name: channel},
        lambda _n: chosen,
        clock,
        {channel.name: limits or ChannelLimits()},
        rng=random.Random(7),
        flush_delay=0,
        **options,  # type: ignore[arg-type]
    )


async def enqueue(runner: LedgerRunner, *items: NewNotification) -> list[int]:
    """Write notifications; their ids."""
    results = await runner.call(runner.store.enqueue, list(items))
    return [r.id for r in results]


async def row(runner: LedgerRunner, notification_id: int) -> Notification:
    """A notification as the ledger has it now."""
    found = await runner.call(runner.store.get, notification_id)
    assert found is not None
    return found


async def drive(
    clock: FakeClock,
    runner: LedgerRunner,
    done: Callable[[], bool],
    *,
    step: float = 0.01,
    timeout: float = 30.0,
) -> None:
    """Let the loop run until ``done()``, moving the fake clock by ``step`` only when
    everything waits on it (no ledger call under way, nothing else ready to run); fails after
    ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while not done():
        assert time.monotonic() < deadline, "the dispatcher never got there"
        await asyncio.sleep(0)
        if runner.pending:
            quiet = 0
            await runner.settled()
        else:
            quiet += 1
        if quiet >= QUIET_YIELDS and clock.sleepers:
            clock.advance(step)
            quiet = 0


@contextlib.asynccontextmanager
async def running(d: Dispatcher) -> AsyncIterator[asyncio.Task[None]]:
    """``d.run()`` in the background for the block; cancelled (and drained) after it."""
    task = asyncio.create_task(d.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
