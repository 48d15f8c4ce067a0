"""The dispatcher with the real 1MSG channel against the sandbox, over loopback HTTP.

Time in the ledger runs on a fake clock (Retry-After, backoff and probes are waited for by
moving it); the requests, answers and timeouts are real.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.scenarios import (
    Answer,
    Scenario,
    Script,
    builtin_scripts,
)
from nextstep.adapters.channels.onemsg.sandbox.server import serving
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.sending.helpers import dispatcher, enqueue, row
from tests.support.notifications import new_notification
from tests.support.sandbox import SandboxHandle, running_sandbox

PARAMS = ["Maria", "loan application", "upload documents"]
ONE_SHOT_401 = Script(
    "4011", (Answer(status=401, error="Wrong token for channel. Please provide token"),)
)


@dataclass
class World:
    """A sandbox, a 1MSG channel pointing at it, a ledger and a fake clock."""

    sandbox: SandboxHandle
    channel: OneMsgChannel
    runner: LedgerRunner
    clock: FakeClock

    def sends_to(self, phone: str) -> list[Any]:
        """The sendTemplate requests the sandbox received for ``phone``."""
        return [r for r in self.sandbox.sends() if r.body.get("phone") == phone]


@pytest.fixture
async def world(clock: FakeClock) -> AsyncIterator[World]:
    scenario = Scenario(
        (*builtin_scripts(slow=5.0), ONE_SHOT_401),
        status="disconnected",
        status_recover_after=1,
    )
    async with running_sandbox(SandboxConfig(scenario=scenario, acks=False)) as sandbox:
        channel = OneMsgChannel(
            "whatsapp", sandbox.channel_config(timeout={"read": 0.3}), clock=clock
        )
        runner = LedgerRunner(open_store("sqlite:///:memory:"))
        try:
            yield World(sandbox, channel, runner, clock)
        finally:
            await channel.aclose()
            runner.close()


def _to(phone: str, params: list[str] | None = None, **extra: Any) -> Any:
    fields = {
        "template": "next_step",
        "namespace": NAMESPACE,
        "language": "en",
        "params": PARAMS if params is None else params,
        "text": "Hello",
    }
    return new_notification(phone, fields=fields, **extra)


async def _rounds(w: World, policy: RetryPolicy, rounds: int, step: float, **kw: Any) -> None:
    d = dispatcher(w.runner, w.clock, w.channel, policy, **kw)
    for _ in range(rounds):
        await d.run_until_idle()
        w.clock.advance(step)


async def test_transient_failures_are_retried_and_accepted_exactly_once(world: World) -> None:
    phone = "34600000002"  # the sandbox answers 500 twice, then accepts
    (nid,) = await enqueue(world.runner, _to(phone))
    await _rounds(world, RetryPolicy(attempts=4, backoff=1, max_backoff=2), 5, 5)
    done = await row(world.runner, nid)
    assert [r.status for r in world.sends_to(phone)] == [500, 500, 200]
    assert (done.state, done.attempts) == (State.SENT, 3)
    assert done.provider_id is not None and done.provider_id.startswith("wamid.")


async def test_a_429_waits_at_least_retry_after(world: World) -> None:
    phone = "34600000003"  # 429 with Retry-After: 2, then accepted
    (nid,) = await enqueue(world.runner, _to(phone))
    # No 6 s spacing per recipient here: what holds the retry back is the Retry-After alone.
    limits = ChannelLimits(recipient_spacing=0)
    d = dispatcher(world.runner, world.clock, world.channel, RetryPolicy(backoff=0.1), limits)
    start = world.clock.now()
    await d.run_until_idle()
    waiting = await row(world.runner, nid)
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at >= start + 2
    world.clock.advance(1.9)
    await d.run_until_idle()
    assert len(world.sends_to(phone)) == 1
    world.clock.advance(0.2)
    await d.run_until_idle()
    assert [r.status for r in world.sends_to(phone)] == [429, 200]
    assert (await row(world.runner, nid)).state is State.SENT


@pytest.mark.parametrize(
    ("phone", "params", "failure_class"),
    [
        pytest.param("34600000001", PARAMS, "recipient", id="recipient-131026"),
        pytest.param("34600000100", ["Maria"], "template", id="template-132000"),
    ],
)
async def test_recipient_and_template_failures_are_not_retried(
    world: World, phone: str, params: list[str], failure_class: str
) -> None:
    (nid,) = await enqueue(world.runner, _to(phone, params))
    await _rounds(world, RetryPolicy(attempts=5, backoff=1), 3, 3600)
    failed = await row(world.runner, nid)
    assert len(world.sends_to(phone)) == 1
    assert (failed.state, failed.failure_class) == (State.FAILED, failure_class)


async def test_an_account_failure_stops_the_channel_without_losing_anything(
    world: World,
) -> None:
    phones = ["34600004011", "34600000101", "34600000102"]
    ids = await enqueue(world.runner, *(_to(p) for p in phones))
    d = dispatcher(world.runner, world.clock, world.channel, limits=ChannelLimits(max_in_flight=1))
    await d.run_until_idle()
    circuit = d.status()["whatsapp"].circuit
    assert circuit.state == "open" and "401" in circuit.reason
    assert len(world.sandbox.sends()) == 1
    assert [(await row(world.runner, i)).state for i in ids] == [State.QUEUED] * 3

    world.clock.advance(5)
    await d.run_until_idle()  # GET status answers "disconnected": still stopped
    assert d.status()["whatsapp"].circuit.state == "open"
    assert len(world.sandbox.sends()) == 1

    world.clock.advance(600)
    await d.run_until_idle()  # now "connected": everything goes, nothing was lost
    assert d.status()["whatsapp"].circuit.state == "closed"
    assert [(await row(world.runner, i)).state for i in ids] == [State.SENT] * 3
    assert [len(world.sends_to(p)) for p in phones] == [2, 1, 1]


async def test_a_read_timeout_stays_in_doubt_and_is_not_sent_again(world: World) -> None:
    phone = "34600000005"  # the sandbox answers after 5 s; the channel reads for 0.3 s
    (nid,) = await enqueue(world.runner, _to(phone))
    await _rounds(world, RetryPolicy(attempts=5, backoff=1), 3, 3600)
    doubt = await row(world.runner, nid)
    assert doubt.state is State.IN_DOUBT
    # Received once (its answer is still being held back, so it is not in ``sends`` yet).
    assert world.sandbox.state.attempts[("test-instance", phone)] == 1


async def test_duplicates_are_skipped_and_never_sent(world: World) -> None:
    phone = "34600000200"
    first, second = await enqueue(
        world.runner, _to(phone, dedupe_key="A-1:docs"), _to(phone, dedupe_key="A-1:docs")
    )
    await _rounds(world, RetryPolicy(), 2, 60)
    assert len(world.sends_to(phone)) == 1
    assert (await row(world.runner, first)).state is State.SENT
    assert (await row(world.runner, second)).state is State.SKIPPED


def _closed_port() -> int:
    """A loopback port nobody listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_channel_opens_its_circuit_and_burns_no_attempts(
    clock: FakeClock,
) -> None:
    # Issue 15.9: with the API refusing connections every notification spent its attempts
    # and ended failed. Now the channel stops, the notifications wait untouched, and go once
    # the API is back.
    port = _closed_port()
    config = {
        "base_url": f"http://127.0.0.1:{port}",
        "instance_id": "test-instance",
        "token": SandboxConfig().token,
        "timeout": {"connect": 1, "read": 2},
    }
    channel = OneMsgChannel("whatsapp", config, clock=clock)
    runner = LedgerRunner(open_store("sqlite:///:memory:"))
    try:
        phones = [f"3460000{i:04d}" for i in range(101, 106)]
        ids = await enqueue(runner, *(_to(p) for p in phones))
        policy = RetryPolicy(attempts=2, backoff=1)
        d = dispatcher(runner, clock, channel, policy, limits=ChannelLimits(max_in_flight=2))
        for _ in range(4):  # the first attempt, then failed probes
            await d.run_until_idle()
            clock.advance(30)
        rows = [await row(runner, i) for i in ids]
        assert [(r.state, r.attempts) for r in rows] == [(State.QUEUED, 0)] * 5
        circuit = d.status()["whatsapp"].circuit
        assert (circuit.state, circuit.cause) == ("open", "unreachable")
        assert circuit.failed_probes >= 1

        async with serving(SandboxConfig(acks=False), port=port) as back:
            assert back.base_url.endswith(f":{port}")
            clock.advance(600)
            await d.run_until_idle()  # the probe succeeds: everything goes, once
            assert d.status()["whatsapp"].circuit.state == "closed"
            assert [(await row(runner, i)).state for i in ids] == [State.SENT] * 5
            sent = [
                r.body["phone"] for r in back.state.requests if r.path.endswith("/sendTemplate")
            ]
            assert sorted(sent) == phones
    finally:
        await channel.aclose()
        runner.close()
