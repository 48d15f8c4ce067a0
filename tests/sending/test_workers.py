"""A lane's workers: one per request slot, each sending one notification after another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.sending.helpers import TRANSIENT, dispatcher, drive, enqueue, row, running
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification


@pytest.fixture
async def runner() -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store("sqlite:///:memory:"))
    yield r
    r.close()


class BrokenPolicy:
    """A retry policy whose ``on`` is unusable: deciding after a failure raises."""

    attempts = 3
    backoff = 1.0
    max_backoff = 1.0
    on = None
    in_doubt = "hold"


async def test_an_attempt_that_breaks_leaves_its_message_in_doubt_and_the_worker_going(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    for recipient in ("1", "2", "3"):
        fake.script(recipient, [TRANSIENT])
    ids = await enqueue(runner, *(new_notification(r) for r in ("1", "2", "3")))
    broken = BrokenPolicy()
    limits = ChannelLimits(max_in_flight=1)
    await dispatcher(runner, clock, fake, broken, limits).run_until_idle()  # type: ignore[arg-type]
    rows = [await row(runner, nid) for nid in ids]
    # Each was sent, so it may have reached the provider: in doubt, never sent again; the one
    # worker went on to the next each time.
    assert [r.state for r in rows] == [State.IN_DOUBT] * 3
    assert [r.attempts for r in rows] == [1, 1, 1]
    assert len(fake.sends) == 3


async def test_stopping_an_idle_dispatcher_waits_for_nothing(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(max_in_flight=50))
    async with running(d) as task:
        await drive(clock, runner, lambda: clock.sleepers > 0, step=0)
    assert task.cancelled()
    # Every worker is gone: nothing is left running on the loop but this test.
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
