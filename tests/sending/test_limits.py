"""The dispatcher's limits on a fake clock: rate, per-recipient spacing, requests in flight;
and what it does when it is woken or stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import Outcome, OutcomeKind, State
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.sending.helpers import ACCOUNT, dispatcher, drive, enqueue, row, running
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification


@pytest.fixture
async def runner() -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store("sqlite:///:memory:"))
    yield r
    r.close()


def _most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The most sends any half-open window ``[t, t + window)`` holds (t ranges over all
    reals; the maximum is reached with t at a send)."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


async def test_at_80_per_second_no_one_second_window_carries_more_than_80(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    await enqueue(runner, *(new_notification(f"34600{i:06d}") for i in range(400)))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(rate=80, max_in_flight=1000))
    start = clock.now()
    task = asyncio.create_task(d.run_until_idle())
    await drive(clock, runner, task.done, step=0.01)
    await task

    times = [s.at for s in fake.sends]
    assert len(times) == 400
    assert _most_in_any_window(times) == 80
    # It does use the rate: 400 sends take about 4 s, not much more.
    assert max(times) - start < 4.2


async def test_a_429_pauses_the_whole_channel(runner: LedgerRunner, clock: FakeClock) -> None:
    fake = FakeChannel(clock)
    fake.script(
        "1", [Outcome(OutcomeKind.TRANSIENT, "429", http_status=429, retry_after=30, pause=30)]
    )
    await enqueue(runner, new_notification("1"), new_notification("2"))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(max_in_flight=1))
    start = clock.now()
    async with running(d):
        await drive(clock, runner, lambda: len(fake.sends) >= 3, step=0.5)
    sends = [(s.message.to, s.at - start) for s in fake.sends]
    assert sends[:2] == [("1", 0), ("2", 30)]
    # The one slot frees once "2"'s result is written (real time, while drive() moves the
    # fake clock by steps of 0.5 s): "1" goes at 30, or one step later.
    assert sends[2][0] == "1" and 30 <= sends[2][1] <= 30.5


async def test_an_unbounded_retry_after_pauses_the_channel_at_most_max_pause(
    runner: LedgerRunner, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 15.6: one 429 with Retry-After: 100000 paused the channel 27.8 h, silently.
    huge = Outcome(OutcomeKind.TRANSIENT, "429", http_status=429, retry_after=1e5, pause=1e5)
    fake = FakeChannel(clock)
    fake.script("1", [huge])
    fake.script("2", [huge])
    await enqueue(runner, new_notification("1"), new_notification("2"), new_notification("3"))
    limits = ChannelLimits(max_in_flight=1, max_pause=120)
    d = dispatcher(runner, clock, fake, limits=limits)
    start = clock.now()
    with caplog.at_level(logging.WARNING, logger="nextstep.engine.sending"):
        async with running(d):
            await drive(clock, runner, lambda: len(fake.sends) >= 1, step=0.5)
            await drive(clock, runner, lambda: d.status()["whatsapp"].paused_until is not None)
            paused = d.status()["whatsapp"].paused_until
            assert paused == pytest.approx(start + 120, abs=0.6)
            gauge = "nextstep_channel_paused_until_seconds"
            assert REGISTRY.get_sample_value(gauge, {"channel": "whatsapp"}) == paused
            await drive(clock, runner, lambda: len(fake.sends) >= 4, step=0.5, timeout=1000)
    at = [(s.message.to, round(s.at - start)) for s in fake.sends]
    # 1 answers 429 at 0; 2 (after the pause) answers 429 at 120; 3 and the retry of 1 at 240
    assert at[:2] == [("1", 0), ("2", 120)]
    assert sorted(at[2:4]) == [("1", 240), ("3", 240)]
    # The retry waited for the capped Retry-After, not 100,000 s.
    row = await runner.call(runner.store.get, 1)
    assert row is not None and row.state is State.SENT
    warnings = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert (
        warnings
        == [
            "channel whatsapp paused for 120s: the provider is rate limiting "
            "(the provider asked for 100000s; max_pause is 120s)"
        ]
        * 2
    )


async def test_two_messages_to_one_recipient_are_six_seconds_apart(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    ids = await enqueue(runner, *(new_notification("1") for _ in range(3)), new_notification("2"))
    d = dispatcher(runner, clock, fake)
    start = clock.now()
    async with running(d):
        await drive(clock, runner, lambda: len(fake.sends) >= 4, step=0.25)
    to_one = [s.at - start for s in fake.sends_to("1")]
    assert to_one[0] == 0 and fake.sends_to("2")[0].at == start
    assert all(b - a >= 6 for a, b in zip(to_one, to_one[1:], strict=False))
    assert to_one[-1] < 13  # each waited for its own slot, not for a poll
    assert [(await row(runner, nid)).attempts for nid in ids] == [1, 1, 1, 1]


async def test_no_more_than_max_in_flight_requests_at_once(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    fake.gate = asyncio.Event()
    await enqueue(runner, *(new_notification(str(i)) for i in range(50)))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(rate=1000, max_in_flight=5))
    async with running(d):
        await drive(clock, runner, lambda: fake.in_flight == 5)
        for _ in range(20):  # give it every chance to start a sixth
            await asyncio.sleep(0)
        assert len(fake.sends) == 5
        assert d.status()["whatsapp"].in_flight == 5
        fake.gate.set()
        await drive(clock, runner, lambda: len(fake.sends) == 50)
    assert fake.max_in_flight == 5


async def test_wake_sends_new_work_at_once(runner: LedgerRunner, clock: FakeClock) -> None:
    fake = FakeChannel(clock)
    d = dispatcher(runner, clock, fake)
    async with running(d):
        await drive(clock, runner, lambda: clock.sleepers > 0, step=0)  # idle, polling
        await enqueue(runner, new_notification("1"))
        d.wake()
        at = clock.now()
        await drive(clock, runner, lambda: len(fake.sends) == 1, step=0)
    assert fake.sends[0].at == at


async def test_stopping_gives_back_what_was_not_sent(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    fake.gate = asyncio.Event()
    ids = await enqueue(runner, *(new_notification(str(i)) for i in range(6)))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(max_in_flight=2), drain_timeout=0.05)
    async with running(d):
        await drive(clock, runner, lambda: fake.in_flight == 2)
    rows = [await row(runner, nid) for nid in ids]
    # The two cut off mid-request may have reached the provider; the others never left.
    assert [r.state for r in rows] == [State.IN_DOUBT] * 2 + [State.QUEUED] * 4
    assert [r.attempts for r in rows] == [1, 1, 0, 0, 0, 0]


async def test_stopping_lets_requests_already_sent_finish(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    fake.gate = asyncio.Event()
    ids = await enqueue(runner, *(new_notification(str(i)) for i in range(3)))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(max_in_flight=2))
    task = asyncio.create_task(d.run())
    await drive(clock, runner, lambda: fake.in_flight == 2)
    task.cancel()
    fake.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    states = [(await row(runner, nid)).state for nid in ids]
    assert states == [State.SENT, State.SENT, State.QUEUED]


async def test_retry_policy_comes_from_the_notification(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock, default=Outcome(OutcomeKind.TRANSIENT, "503"))
    a, b = await enqueue(runner, new_notification("1", rule_id="a"), new_notification("2"))
    policies = {"a": RetryPolicy(attempts=1), "loan-docs": RetryPolicy(attempts=3, backoff=1)}
    from nextstep.engine.sending.dispatcher import Dispatcher

    d = Dispatcher(runner, {"whatsapp": fake}, lambda n: policies[n.rule_id], clock)
    for _ in range(4):
        await d.run_until_idle()
        clock.advance(10)
    assert [(await row(runner, nid)).attempts for nid in (a, b)] == [1, 3]


async def test_while_running_a_successful_probe_resumes_the_channel(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    fake = FakeChannel(clock)
    fake.script("1", [ACCOUNT])
    ids = await enqueue(runner, new_notification("1"), new_notification("2"))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(max_in_flight=1))
    async with running(d):
        await drive(clock, runner, lambda: fake.probes == 1, step=0.5)
        assert len(fake.sends) == 1 and d.status()["whatsapp"].circuit.state == "open"
        fake.probe_ok = True
        await drive(clock, runner, lambda: len(fake.sends) == 3, step=0.5)
        assert d.status()["whatsapp"].circuit.state == "closed"
    assert [(await row(runner, nid)).state for nid in ids] == [State.SENT] * 2
