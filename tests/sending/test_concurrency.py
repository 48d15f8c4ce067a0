"""The in-flight target: Little's law from the smoothed latency, capped, AIMD on overload;
and a lane that follows it reaches its rate with a slow provider."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import Message, Outcome, OutcomeKind
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.concurrency import Concurrency, ConcurrencyRules, overloaded
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.sending.helpers import dispatcher, drive, enqueue, running
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification

latencies = st.floats(min_value=0.0, max_value=30.0, allow_nan=False)
rates = st.floats(min_value=0.1, max_value=5000.0, allow_nan=False)
ceilings = st.integers(min_value=1, max_value=10_000)


def settle(c: Concurrency, clock: FakeClock, latency: float, answers: int) -> int:
    """``answers`` answers of ``latency`` seconds, each a millisecond apart."""
    for _ in range(answers):
        clock.advance(0.001)
        c.answered(latency, clock.now())
    return c.target


@pytest.mark.parametrize(
    ("latency", "expected"),
    [
        pytest.param(0.05, 75, id="50ms"),
        pytest.param(0.3, 450, id="300ms"),
        pytest.param(1.0, 1500, id="1s"),
        pytest.param(2.0, 3000, id="2s"),
    ],
)
def test_the_target_is_rate_times_latency_with_headroom(latency: float, expected: int) -> None:
    clock = FakeClock()
    c = Concurrency(1000, 10_000)
    assert settle(c, clock, latency, 400) == pytest.approx(expected, rel=0.01)
    assert c.latency == pytest.approx(latency)


def test_max_in_flight_is_a_ceiling_and_the_floor_holds() -> None:
    clock = FakeClock()
    assert settle(Concurrency(1000, 2000), clock, 5.0, 50) == 2000
    assert settle(Concurrency(1000, 2000), clock, 0.0, 50) == 4  # the floor
    assert settle(Concurrency(1000, 2), clock, 0.0, 50) == 2  # a ceiling under the floor


def test_before_any_answer_the_initial_latency_is_assumed() -> None:
    c = Concurrency(80, 4000)
    assert (c.latency, c.target) == (None, math.ceil(80 * 1.0 * 1.5))


def test_the_smoothed_latency_follows_a_change_within_a_hundred_answers() -> None:
    clock = FakeClock()
    c = Concurrency(100, 10_000)
    settle(c, clock, 0.1, 200)
    settle(c, clock, 1.0, 100)
    assert c.latency is not None and 0.9 < c.latency < 1.0


def test_overload_halves_once_per_round_trip_and_recovers_additively() -> None:
    clock = FakeClock()
    c = Concurrency(1000, 10_000)
    full = settle(c, clock, 0.3, 400)  # 450
    assert c.overload(clock.now()) == full // 2
    clock.advance(0.1)  # same round trip: the same signal
    assert c.overload(clock.now()) == full // 2
    clock.advance(0.3)  # a round trip later: cut again
    assert c.overload(clock.now()) == math.ceil(full / 4)
    # Growing back: a step (10% of Little's target) per round trip, never a jump.
    seen = [c.target]
    for _ in range(40):
        clock.advance(0.15)
        seen.append(c.answered(0.3, clock.now()))
    assert seen == sorted(seen)
    assert all(b - a <= 23 for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1] == full and c.allowance is None


@given(rate=rates, ceiling=ceilings, samples=st.lists(latencies, min_size=1, max_size=60))
def test_the_target_stays_within_its_bounds(
    rate: float, ceiling: int, samples: list[float]
) -> None:
    clock = FakeClock()
    c = Concurrency(rate, ceiling)
    for i, latency in enumerate(samples):
        clock.advance(0.01)
        target = c.overload(clock.now()) if i % 7 == 3 else c.answered(latency, clock.now())
        assert min(4, ceiling) <= target <= ceiling


@given(rate=rates, ceiling=ceilings, latency=latencies, cuts=st.integers(1, 5))
def test_overload_never_raises_the_target(
    rate: float, ceiling: int, latency: float, cuts: int
) -> None:
    clock = FakeClock()
    c = Concurrency(rate, ceiling)
    c.answered(latency, clock.now())
    for _ in range(cuts):
        before = c.target
        clock.advance(60)
        assert c.overload(clock.now()) <= before


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        pytest.param(Outcome(OutcomeKind.TRANSIENT, http_status=429, pause=1.0), True, id="429"),
        pytest.param(Outcome(OutcomeKind.TRANSIENT, "not sent: ConnectTimeout"), True, id="conn"),
        pytest.param(Outcome(OutcomeKind.IN_DOUBT, "no answer: ReadTimeout"), True, id="read"),
        pytest.param(Outcome(OutcomeKind.TRANSIENT, http_status=503), True, id="503"),
        pytest.param(Outcome(OutcomeKind.TRANSIENT, http_status=500), False, id="500"),
        pytest.param(Outcome(OutcomeKind.ACCEPTED, provider_id="x"), False, id="accepted"),
        pytest.param(Outcome(OutcomeKind.RECIPIENT, http_status=400), False, id="recipient"),
        pytest.param(Outcome(OutcomeKind.ACCOUNT, http_status=401), False, id="account"),
    ],
)
def test_what_counts_as_overload(outcome: Outcome, expected: bool) -> None:
    assert overloaded(outcome) is expected


@pytest.mark.parametrize(
    "rules",
    [
        {"smoothing": 0},
        {"decrease": 1},
        {"headroom": 0.5},
        {"floor": 0},
    ],
)
def test_bad_rules_are_refused(rules: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ConcurrencyRules(**rules)  # type: ignore[arg-type]


class SlowChannel(FakeChannel):
    """Answers every send ``latency`` seconds later on the fake clock."""

    def __init__(self, clock: FakeClock, latency: float) -> None:
        super().__init__(clock)
        self.latency = latency

    async def send(self, message: Message) -> Outcome:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.clock.sleep(self.latency)
        finally:
            self.in_flight -= 1
        return await super().send(message)


async def test_a_slow_provider_still_gets_the_configured_rate(clock: FakeClock) -> None:
    # 100/s with answers taking 2 s needs 200 requests in flight: twice the old fixed 100.
    runner = LedgerRunner(open_store("sqlite:///:memory:"))
    try:
        fake = SlowChannel(clock, 2.0)
        count = 600
        await enqueue(runner, *(new_notification(f"34600{i:06d}") for i in range(count)))
        d = dispatcher(runner, clock, fake, limits=ChannelLimits(rate=100, recipient_spacing=0))
        start = clock.now()
        async with running(d):
            await drive(clock, runner, lambda: len(fake.sends) == count, step=0.01)
            status = d.status()["whatsapp"]
        # Answers are recorded when they come: once the first ones are in, 100 a second.
        steady = [s for s in fake.sends if start + 5 <= s.at < start + 7]
        assert 195 <= len(steady) <= 200
        assert fake.sends[-1].at - start <= count / 100 + 2.0 + 1.0
        assert 190 <= fake.max_in_flight <= status.in_flight_target
        assert status.latency == pytest.approx(2.0, abs=0.02)
        assert status.in_flight_target == pytest.approx(300, abs=5)  # 100/s x 2 s x 1.5
        labels = {"channel": "whatsapp"}  # /metrics shows the same, read at scrape time
        target = REGISTRY.get_sample_value("nextstep_send_in_flight_target", labels)
        latency = REGISTRY.get_sample_value("nextstep_send_latency_smoothed_seconds", labels)
        assert (target, latency) == (status.in_flight_target, status.latency)
    finally:
        runner.close()


class TimingOut(SlowChannel):
    """A slow channel whose first ``failures`` sends fail without an answer (a timeout)."""

    def __init__(self, clock: FakeClock, latency: float, failures: int) -> None:
        super().__init__(clock, latency)
        self.failures = failures

    async def send(self, message: Message) -> Outcome:
        if self.failures > 0:
            self.failures -= 1
            await self.clock.sleep(self.latency)
            return Outcome(OutcomeKind.TRANSIENT, "not sent: ConnectTimeout")
        return await super().send(message)


async def test_timeouts_shrink_the_requests_in_flight(clock: FakeClock) -> None:
    runner = LedgerRunner(open_store("sqlite:///:memory:"))
    try:
        fake = TimingOut(clock, 1.0, failures=40)
        count = 400
        await enqueue(runner, *(new_notification(f"34600{i:06d}") for i in range(count)))
        limits = ChannelLimits(rate=100, max_in_flight=120, recipient_spacing=0)
        policy = RetryPolicy(attempts=5, backoff=1, max_backoff=2)
        d = dispatcher(runner, clock, fake, policy, limits=limits)
        targets: list[int] = []

        def all_sent() -> bool:
            targets.append(d.status()["whatsapp"].in_flight_target)
            return len(fake.sends) == count

        async with running(d):
            await drive(clock, runner, all_sent, step=0.01)
            recovered = d.status()["whatsapp"].in_flight_target
        # 40 timeouts came back within one round trip: one signal, one halving of 120.
        assert targets[0] == 120 and min(targets) == 60
        assert fake.max_in_flight <= 120
        assert recovered == 120  # grown back once answers came again (100/s x 1 s x 1.5 > 120)
    finally:
        runner.close()


class Wobbly(SlowChannel):
    """Answers in 0.30 s and 0.36 s by turns: a target that moves by a few with each answer."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, 0.3)
        self.turn = 0

    async def send(self, message: Message) -> Outcome:
        self.turn += 1
        self.latency = 0.3 if self.turn % 2 else 0.36
        return await super().send(message)


class WorkerCount:
    """Lane workers started and alive, counted as the loop creates them (``all_tasks()`` walks
    every task the process still holds, which on a long test run costs more than the test)."""

    def __init__(self) -> None:
        self.started = 0
        self.alive = 0
        self.peak = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            if getattr(coro, "__qualname__", "") == "Lane._work":
                self.started += 1
                self.alive += 1
                self.peak = max(self.peak, self.alive)
                task.add_done_callback(self._ended)
            return task

        loop.set_task_factory(factory)

    def _ended(self, _task: asyncio.Task[Any]) -> None:
        self.alive -= 1


async def test_a_wobbling_target_does_not_churn_workers(clock: FakeClock) -> None:
    runner = LedgerRunner(open_store("sqlite:///:memory:"))
    loop = asyncio.get_running_loop()
    workers = WorkerCount()
    workers.install(loop)
    try:
        fake = Wobbly(clock)
        count = 800
        await enqueue(runner, *(new_notification(f"34600{i:06d}") for i in range(count)))
        d = dispatcher(runner, clock, fake, limits=ChannelLimits(rate=100, recipient_spacing=0))
        async with running(d):
            await drive(clock, runner, lambda: len(fake.sends) == count, step=0.01, timeout=60)
        # The first guess (1 s: 150 workers) shrinks to about 50; then no worker is retired
        # and started again for each wobble of the target (without the margin: 227 workers
        # for 800 answers; a worker's slot also waits for its result's commit, whose timing
        # is real, so a few more than the peak may start).
        assert workers.peak == 150
        assert workers.started <= workers.peak + 20
    finally:
        loop.set_task_factory(None)
        runner.close()
