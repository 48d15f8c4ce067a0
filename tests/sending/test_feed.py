"""A dispatcher fed with ids while they arrive (``nextstep ingest`` sending while it reads):
what arrives is sent at once, window after window, each id once; what the pass leaves behind
(a retry due later) stays queued for the caller's pass over every id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.intake.arrivals import Arrivals
from nextstep.engine.intake.idruns import IdRuns
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.rules.rule import RetryPolicy
from tests.sending.helpers import TRANSIENT, dispatcher, drive, enqueue, row
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification


@pytest.fixture
async def runner() -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store("sqlite:///:memory:"))
    yield r
    r.close()


def runs(ids: list[int]) -> IdRuns:
    found = IdRuns()
    for notification_id in ids:
        found.append(notification_id)
    return found


async def test_ids_are_sent_as_they_arrive_window_after_window(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    ids = await enqueue(runner, *(new_notification(str(i)) for i in range(1, 8)))
    arrivals = Arrivals(size=2)  # several windows for the first three ids already
    d = dispatcher(runner, clock, fake, ids=arrivals)
    arrivals.update(runs(ids[:3]))
    sending = asyncio.create_task(d.run_until_idle())

    await drive(clock, runner, lambda: len(fake.sends) == 3)
    assert not sending.done()  # idle, but more ids may come: it waits for them
    arrivals.update(runs(ids))
    await drive(clock, runner, lambda: len(fake.sends) == 7)
    assert not sending.done()
    arrivals.close()
    await drive(clock, runner, sending.done)
    await sending

    assert sorted(s.message.to for s in fake.sends) == sorted(str(i) for i in range(1, 8))
    assert {(await row(runner, nid)).state for nid in ids} == {State.SENT}


async def test_a_file_without_ids_ends_the_pass_once_it_is_read(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    arrivals = Arrivals(size=100)
    d = dispatcher(runner, clock, fake, ids=arrivals)
    sending = asyncio.create_task(d.run_until_idle())
    arrivals.close()
    await drive(clock, runner, sending.done)
    await sending
    assert fake.sends == []


async def test_a_retry_due_later_is_left_queued_for_the_pass_over_every_id(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    fake.script("1", [TRANSIENT])
    ids = await enqueue(runner, new_notification("1"), new_notification("2"))
    arrivals = Arrivals(size=1)
    policy = RetryPolicy(attempts=3, backoff=60, max_backoff=60)
    d = dispatcher(runner, clock, fake, policy, ids=arrivals)
    arrivals.update(ids)  # any sequence of ids, not only IdRuns
    arrivals.close()
    await d.run_until_idle()

    first, second = [await row(runner, nid) for nid in ids]
    assert (first.state, first.attempts) == (State.QUEUED, 1)
    assert second.state is State.SENT
    clock.advance(120)
    await dispatcher(runner, clock, fake, policy, ids=ids).run_until_idle()
    assert (await row(runner, ids[0])).state is State.SENT
    assert len(fake.sends_to("1")) == 2 and len(fake.sends_to("2")) == 1
