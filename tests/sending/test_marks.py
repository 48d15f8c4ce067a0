"""A row is marked "being sent" only just before its request is written, so a crash leaves in
doubt at most the requests in flight; the rest of the lease is simply due again (issue 15,
defect 10), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.sending.helpers import dispatcher, enqueue
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification

IN_FLIGHT = 3


@pytest.fixture
async def runner(ledger_url: str) -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store(ledger_url))
    yield r
    r.close()


async def test_a_crash_leaves_in_doubt_only_the_requests_in_flight(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    fake.gate = asyncio.Event()  # every request hangs: as if the process died mid-send
    ids = await enqueue(runner, *(new_notification(f"3460000{i:04d}") for i in range(40)))
    limits = ChannelLimits(rate=1000, max_in_flight=IN_FLIGHT, recipient_spacing=0)
    d = dispatcher(runner, clock, fake, limits=limits, lease_size=40, drain_timeout=0.1)
    running = asyncio.create_task(d.run())

    async def leased_and_in_flight() -> None:
        while len(fake.sends) < IN_FLIGHT:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(leased_and_in_flight(), 10)
    store = runner.store
    sending = await runner.call(store.list, state=State.SENDING, limit=100)
    assert len(sending) > IN_FLIGHT  # leased well beyond what is in flight
    # The process "dies" here: nothing more is written; a new process recovers everything.
    in_doubt = await runner.call(store.recover_interrupted, clock.now())
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert in_doubt == IN_FLIGHT
    doubtful = await runner.call(store.list, state=State.IN_DOUBT, limit=100)
    sent_to = {s.message.to for s in fake.sends}
    assert {n.recipient for n in doubtful} == sent_to  # exactly the requests written
    queued = await runner.call(store.list, state=State.QUEUED, limit=100)
    assert len(queued) == len(ids) - IN_FLIGHT
