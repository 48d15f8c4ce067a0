"""A row is marked "being sent" only just before its request is written, so a crash leaves in
doubt at most the requests in flight; the rest of the lease is simply due again (issue 15,
defect 10), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import AttemptResult, Notification
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.sending.ratelimit import ChannelLimits
from nextstep.engine.sending.writer import BatchWriter
from tests.sending.helpers import dispatcher, enqueue
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification
from tests.support.waiting import until

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

    await until(lambda: len(fake.sends) >= IN_FLIGHT, 10)
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


async def test_a_result_is_written_in_the_order_added_and_waited_for(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    # A lane's slot is held until its result is committed (BatchWriter.written): a crash then
    # finds at most one marked row without a result per slot.
    ids = await enqueue(runner, *(new_notification(f"3460000{i:04d}") for i in range(3)))
    leased = await runner.call(runner.store.lease_due, clock.now(), 10)
    assert [n.id for n in leased] == ids
    writer = BatchWriter(runner, clock, max_delay=0)
    tickets = [writer.add(sent(n, clock.now())) for n in leased[:2]]
    waiting = asyncio.ensure_future(writer.written(tickets[1]))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing written yet
    await writer.flush()
    await asyncio.wait_for(waiting, 5)
    await writer.written(tickets[0])  # already written: returns at once
    third = writer.add(sent(leased[2], clock.now()))
    later = asyncio.ensure_future(writer.written(third))
    await asyncio.sleep(0)
    assert not later.done()
    await writer.flush()
    await asyncio.wait_for(later, 5)
    states = [(await runner.call(runner.store.get, i)).state for i in ids]  # type: ignore[union-attr]
    assert states == [State.SENT] * 3


def sent(n: Notification, now: float) -> AttemptResult:
    outcome = {"kind": "accepted", "provider_id": f"wamid.{n.id}"}
    return AttemptResult(n.id, now, State.SENT, outcome, provider_id=f"wamid.{n.id}", attempt=1)
