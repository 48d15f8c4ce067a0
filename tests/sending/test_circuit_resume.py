"""Sending resumes once a circuit closes, even when a lease came back while it was open.

The lease runs on the ledger thread; an account failure can open the circuit while it is under
way. What it returns then must not sit in the lane's backlog with no worker to wake: that was
the stall seen on a large backlog (the probe succeeded, then nothing was sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Message, Outcome, State
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.sending.helpers import ACCOUNT, dispatcher, drive, enqueue, running
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification

P = ParamSpec("P")
T = TypeVar("T")
FAILING = "34600000009"
STALLED = 30.0  # seconds on the fake clock with rows still unsent


class HeldLeases(LedgerRunner):
    """A runner whose next lease waits for :attr:`release` (set) once :attr:`hold` is on, and
    says so on :attr:`leasing`: a lease the ledger thread is still working on."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.hold = False
        self.leasing = asyncio.Event()
        self.release = asyncio.Event()

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.hold and getattr(fn, "__name__", "") == "lease_due":
            self.hold = False
            self.leasing.set()
            await self.release.wait()
        return await super().call(fn, *args, **kwargs)


class FailsDuringLease(FakeChannel):
    """The send to ``FAILING`` answers an account failure only once a lease is under way."""

    def __init__(self, clock: FakeClock, runner: HeldLeases) -> None:
        super().__init__(clock)
        self.runner = runner

    async def send(self, message: Message) -> Outcome:
        if message.to == FAILING and not self.sends_to(FAILING):
            self.runner.hold = True
            await self.runner.leasing.wait()
        return await super().send(message)


@pytest.fixture
async def runner() -> AsyncIterator[HeldLeases]:
    r = HeldLeases(open_store("sqlite:///:memory:"))
    yield r
    r.close()


async def test_sending_resumes_after_the_probe_when_a_lease_landed_while_open(
    runner: HeldLeases, clock: FakeClock
) -> None:
    fake = FailsDuringLease(clock, runner)
    fake.script(FAILING, [ACCOUNT])
    others = [f"3460000{i:04d}" for i in range(100, 400)]
    ids = await enqueue(runner, new_notification(FAILING), *map(new_notification, others))
    # rate 84/s: the lane keeps 21 leased and leases 11 more at 10, while the failing send waits;
    # those 11 land while the circuit is open: over half, so no refill would come after it.
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(rate=84, max_in_flight=2))

    async with running(d):
        await drive(clock, runner, lambda: d.status()["whatsapp"].circuit.state == "open")
        runner.release.set()  # the lease started before the circuit opened now returns
        fake.probe_ok = True
        resumed = clock.now()

        def all_sent() -> bool:
            lane = d.status()["whatsapp"]
            # 301 sends at 80/s take 4 s on the clock; a stall lets the clock run on idle.
            assert clock.now() - resumed < STALLED, f"stalled: {len(fake.sends)} sent, {lane}"
            return len(fake.sends) == len(ids) + 1 and lane.in_flight == 0 and lane.backlog == 0

        await drive(clock, runner, all_sent, step=0.05, timeout=120)

    assert d.status()["whatsapp"].circuit.state == "closed"
    assert {s.message.to for s in fake.sends} == {FAILING, *others}
    assert len(fake.sends_to(FAILING)) == 2  # the failure, then once the circuit closed
    states = await runner.call(runner.store.counts)
    assert states == {("loan-docs", State.SENT.value): len(ids)}
