"""Issue 15.11: notifications in doubt settled from 1MSG's message history, against the sandbox
over loopback HTTP (``GET messages``), with history storage on and off. The ledger's clock is
a fake one (the safe delay is waited for by moving it); requests and answers are real."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.scenarios import Scenario, builtin_scripts
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.adapters.channels.onemsg.whatsapp import fill
from nextstep.engine.clock import FakeClock
from nextstep.engine.delivery.indoubt import ResolveSettings, resolve_once
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import Message, State
from nextstep.engine.plugins import SearchesSent, SentSearch
from tests.delivery.world import NEXT_STEP
from tests.sending.helpers import dispatcher, enqueue, row
from tests.support.notifications import new_notification
from tests.support.sandbox import SandboxHandle, running_sandbox
from tests.support.waiting import until

SLOW = "34600000005"  # the sandbox accepts it but answers after 5 s: a read timeout
PARAMS = ["Maria", "loan application", "upload documents"]
FIELDS = {  # as the 1msg channel renders them: the approved body filled
    "template": "next_step",
    "namespace": NAMESPACE,
    "language": "en",
    "params": PARAMS,
    "text": fill(NEXT_STEP, PARAMS),
}


@dataclass
class World:
    sandbox: SandboxHandle
    channel: OneMsgChannel
    runner: LedgerRunner
    clock: FakeClock
    asked: dict[int, float] = field(default_factory=dict)  # kept between rounds, as the daemon

    async def in_doubt_after_a_timeout(self, phone: str = SLOW) -> int:
        (nid,) = await enqueue(self.runner, new_notification(phone, fields=dict(FIELDS)))
        await dispatcher(self.runner, self.clock, self.channel).run_until_idle()
        assert (await row(self.runner, nid)).state is State.IN_DOUBT
        await until(lambda: any(m.phone == phone for m in self.sandbox.state.messages.values()))
        return nid

    async def resolve(self) -> Any:
        channels: dict[str, SearchesSent] = {"whatsapp": self.channel}
        return await resolve_once(self.runner, channels, self.clock, asked=self.asked)


@pytest.fixture(params=[True, False], ids=["history-on", "history-off"])
async def world(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[World]:
    async with running_world(request.param, clock) as running:
        yield running


@pytest.fixture
async def world_with_history(clock: FakeClock) -> AsyncIterator[World]:
    async with running_world(True, clock) as running:
        yield running


@asynccontextmanager
async def running_world(history: bool, clock: FakeClock) -> AsyncIterator[World]:
    """The sandbox (history storage on or off), the 1MSG channel and an in-memory ledger."""
    scenario = Scenario(builtin_scripts(slow=5.0))
    config = SandboxConfig(scenario=scenario, acks=False, history=history)
    async with running_sandbox(config) as sandbox:
        settings = sandbox.channel_config(
            timeout={"read": 0.3}, history=history, history_delay="1m"
        )
        channel = OneMsgChannel("whatsapp", settings, clock=clock)
        runner = LedgerRunner(open_store("sqlite:///:memory:"))
        try:
            yield World(sandbox, channel, runner, clock)
        finally:
            await channel.aclose()
            runner.close()


def _resolved(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "nextstep_in_doubt_resolved_total", {"channel": "whatsapp", "outcome": outcome}
    )
    return value or 0.0


async def test_an_accepted_message_found_in_the_history_becomes_sent(world: World) -> None:
    nid = await world.in_doubt_after_a_timeout()
    report = await world.resolve()
    assert (report.sent, report.kept) == ([], [])  # too early: the safe delay is not over
    before = _resolved("sent"), _resolved("kept")
    world.clock.advance(61)
    report = await world.resolve()
    n = await row(world.runner, nid)
    if world.sandbox.config.history:
        [accepted] = [m for m in world.sandbox.state.messages.values() if m.phone == SLOW]
        assert report.sent == [nid]
        assert (n.state, n.provider_id) == (State.SENT, accepted.message_id)
        lines = await world.runner.call(world.runner.store.history, nid)
        assert lines[-1].detail == {
            "state": "sent",
            "from": "in_doubt",
            "by": "history",
            "provider_id": accepted.message_id,
        }
        assert _resolved("sent") == before[0] + 1
    else:  # the history is off: nothing to go by, a person decides
        assert report.kept == [nid]
        assert n.state is State.IN_DOUBT
        assert _resolved("kept") == before[1] + 1
        lines = await world.runner.call(world.runner.store.history, nid)
        assert (lines[-1].kind, lines[-1].detail["found"]) == ("lookup", "nothing")
        world.clock.advance(301)  # asked again later: no second line
        assert (await world.resolve()).kept == [nid]
        again = await world.runner.call(world.runner.store.history, nid)
        assert len(again) == len(lines)
    # Never sent twice: the sandbox got exactly one request.
    assert world.sandbox.state.attempts[("test-instance", SLOW)] == 1


async def test_a_message_missing_from_a_complete_history_is_due_again(world: World) -> None:
    # In doubt after a crash between the mark and the request: the provider never had it.
    phone = "34600000101"
    (nid,) = await enqueue(world.runner, new_notification(phone, fields=dict(FIELDS)))
    store = world.runner.store
    await world.runner.call(store.lease_due, world.clock.now(), 10)
    await world.runner.call(store.mark_sending, [nid], world.clock.now())
    await world.runner.call(store.recover_interrupted, world.clock.now())
    assert (await row(world.runner, nid)).state is State.IN_DOUBT

    world.clock.advance(61)
    report = await world.resolve()
    n = await row(world.runner, nid)
    if world.sandbox.config.history:
        assert report.queued == [nid] and n.state is State.QUEUED
        await dispatcher(world.runner, world.clock, world.channel).run_until_idle()
        assert (await row(world.runner, nid)).state is State.SENT
        assert len([r for r in world.sandbox.sends() if r.body.get("phone") == phone]) == 1
    else:  # an empty answer proves nothing without history storage
        assert report.kept == [nid] and n.state is State.IN_DOUBT
        assert world.sandbox.sends() == []


async def test_a_history_message_already_tracked_is_not_claimed_twice(
    world_with_history: World,
) -> None:
    world = world_with_history
    first = await world.in_doubt_after_a_timeout()
    world.clock.advance(61)
    assert (await world.resolve()).sent == [first]
    # A second notification of the same template to the same chat, in doubt without a request
    # (marked, then a crash before it was written):
    # the one message in the history is the first one's, so this one is due again.
    (second,) = await enqueue(world.runner, new_notification(SLOW, fields=dict(FIELDS)))
    store = world.runner.store
    await world.runner.call(store.lease_due, world.clock.now(), 10)
    await world.runner.call(store.mark_sending, [second], world.clock.now())
    await world.runner.call(store.recover_interrupted, world.clock.now())
    world.clock.advance(61)
    report = await world.resolve()
    assert report.sent == [] and report.queued == [second]


class SilentHistory:
    """A channel whose history says nothing for sure (storage off): records who was asked."""

    safe_delay = 60.0

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def find_sent(self, message: Message, since: float) -> SentSearch:
        self.asked.append(message.to)
        return SentSearch((), complete=False)


async def test_a_large_backlog_is_worked_through_longest_waiting_first(clock: FakeClock) -> None:
    runner = LedgerRunner(open_store("sqlite:///:memory:"))
    try:
        phones = [f"3460000{i:04d}" for i in range(5)]
        for phone in phones:  # in doubt one after the other, a second apart
            (nid,) = await enqueue(runner, new_notification(phone, created_at=clock.now()))
            await runner.call(runner.store.lease_due, clock.now(), 10, None, [nid])
            await runner.call(runner.store.mark_sending, [nid], clock.now())
            await runner.call(runner.store.recover_interrupted, clock.now())
            clock.advance(1)
        channel = SilentHistory()
        asked: dict[int, float] = {}
        settings = ResolveSettings(lookups=2, recheck=300)
        clock.advance(60)
        for _ in range(3):
            await resolve_once(runner, {"whatsapp": channel}, clock, settings, asked)
            clock.advance(30)
        # Two per round, oldest first, each once until its recheck is due.
        assert channel.asked == phones
    finally:
        runner.close()
