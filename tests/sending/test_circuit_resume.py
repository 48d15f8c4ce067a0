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


@pytest.mark.xfail(
    strict=False,
    reason="known intermittent stall (issue 13): in 3 of the last 4 full CI runs, after the "
    "probe closed the circuit, not every row was sent within 20 s; it passes alone (80/80). "
    "Still run: an XPASS/XFAIL line in every suite run until the cause is found.",
)
async def test_sending_resumes_after_the_probe_when_a_lease_landed_while_open(
    runner: HeldLeases, clock: FakeClock
) -> None:
    fake = FailsDuringLease(clock, runner)
    fake.script(FAILING, [ACCOUNT])
    others = [f"3460000{i:04d}" for i in range(100, 400)]
    ids = await enqueue(runner, new_notification(FAILING), *map(new_notification, others))
    # rate 80/s: the lane keeps 20 leased and leases again at 10, while the failing send waits.
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(rate=80, max_in_flight=2))

    async with running(d):
        await drive(clock, runner, lambda: d.status()["whatsapp"].circuit.state == "open")
        runner.release.set()  # the lease started before the circuit opened now returns
        fake.probe_ok = True
        sent = {FAILING, *others}

        def all_sent() -> bool:
            lane = d.status()["whatsapp"]
            done = {s.message.to for s in fake.sends} == sent
            return done and lane.in_flight == 0 and lane.backlog == 0

        await drive(clock, runner, all_sent, step=0.05, timeout=20)

    assert d.status()["whatsapp"].circuit.state == "closed"
    assert len(fake.sends_to(FAILING)) == 2  # the failure, then once the circuit closed
    states = await runner.call(runner.store.counts)
    assert states == {("loan-docs", State.SENT.value): len(ids)}
