"""Faults injected through the sandbox, and what nextstep does about each (docs/sandbox.md,
"Faults for tests"; docs/guarantees.md).

Sending: the dispatcher with the real 1MSG channel over loopback HTTP, the ledger on a fake
clock (backoff and Retry-After are waited for by moving it): 5xx, 429 with Retry-After, the
answer held back after the message was accepted (late or never), the provider's port closed.

Acks: the end-to-end world of tests/delivery (the sandbox posting to nextstep's webhook
endpoint on uvicorn): duplicated, reordered, missing and late acks, and webhook retries (the
same ack posted again). The sandbox's ack timers run in real time; tests wait on its counters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.gate import Gate, gated
from nextstep.adapters.channels.onemsg.sandbox.scenarios import scenario_from
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.delivery.kit import person
from tests.delivery.world import RULES, World, world
from tests.sending.helpers import dispatcher, enqueue, row
from tests.support.notifications import new_notification
from tests.support.sandbox import SandboxHandle, running_sandbox

S = State
INSTANCE = "test-instance"
PARAMS = ["Maria", "loan application", "upload documents"]


# --- sending faults: the dispatcher and the real channel over loopback --------------------


@dataclass
class Wire:
    """A sandbox behind a gate, a 1MSG channel pointing at the gate, a ledger, a fake clock."""

    sandbox: SandboxHandle
    gate: Gate
    channel: OneMsgChannel
    runner: LedgerRunner
    clock: FakeClock

    def answers(self, phone: str) -> list[int]:
        """The HTTP status of every sendTemplate to ``phone`` the sandbox answered."""
        return [r.status for r in self.sandbox.sends() if r.body and r.body.get("phone") == phone]

    def taken(self, phone: str) -> int:
        """Messages to ``phone`` the sandbox accepted (whether or not it answered yet)."""
        return sum(1 for m in self.sandbox.state.messages.values() if m.phone == phone)

    async def rounds(self, policy: RetryPolicy, count: int, step: float) -> None:
        """``count`` dispatcher rounds, the clock moved ``step`` seconds after each."""
        d = dispatcher(
            self.runner, self.clock, self.channel, policy, ChannelLimits(recipient_spacing=0)
        )
        for _ in range(count):
            await d.run_until_idle()
            self.clock.advance(step)


def _to(phone: str) -> Any:
    fields = {
        "template": "next_step",
        "namespace": NAMESPACE,
        "language": "en",
        "params": PARAMS,
        "text": "Hello",
    }
    return new_notification(phone, fields=fields)


SCRIPTS: list[Mapping[str, Any]] = [
    {"match": "5000", "answers": [{"status": 500}, {"status": 500}]},
    {"match": "5020", "answers": [{"status": 502}, {"status": 502}]},
    {"match": "5030", "answers": [{"status": 503, "retry_after": "1"}, {"status": 503}]},
    {"match": "5040", "answers": [{"status": 504}, {"status": 504}]},
    {"match": "4290", "answers": [{"status": 429, "retry_after": "30"}]},
    {"match": "4291", "answers": [{"status": 429, "retry_after": "100000"}]},
    {"match": "7001", "answer": {"hold": "2s"}},
    {"match": "7002", "answer": {"hold": "forever"}},
]


@pytest.fixture
async def wire(clock: FakeClock) -> AsyncIterator[Wire]:
    config = SandboxConfig(scenario=scenario_from({"recipients": SCRIPTS}), acks=False)
    async with running_sandbox(config) as sandbox, gated(sandbox.base_url) as gate:
        settings = {
            "base_url": gate.base_url,
            "instance_id": INSTANCE,
            "token": sandbox.token,
            "timeout": {"connect": 1.0, "read": 0.3},
        }
        channel = OneMsgChannel("whatsapp", settings, clock=clock)
        runner = LedgerRunner(open_store("sqlite:///:memory:"))
        try:
            yield Wire(sandbox, gate, channel, runner, clock)
        finally:
            await channel.aclose()
            runner.close()


@pytest.mark.parametrize("code", [500, 502, 503, 504])
async def test_a_server_error_is_retried_and_the_message_taken_once(wire: Wire, code: int) -> None:
    phone = f"3460000{code}0"
    (nid,) = await enqueue(wire.runner, _to(phone))
    await wire.rounds(RetryPolicy(attempts=4, backoff=1, max_backoff=2), 5, 5)
    done = await row(wire.runner, nid)
    assert wire.answers(phone) == [code, code, 200]
    assert (done.state, done.attempts) == (S.SENT, 3)
    assert wire.taken(phone) == 1


async def test_a_429_waits_for_its_retry_after(wire: Wire) -> None:
    phone = "34600004290"
    (nid,) = await enqueue(wire.runner, _to(phone))
    start = wire.clock.now()
    await wire.rounds(RetryPolicy(backoff=0.1), 1, 0)
    waiting = await row(wire.runner, nid)
    assert waiting.state is S.QUEUED
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at >= start + 28
    await wire.rounds(RetryPolicy(backoff=0.1), 1, 20)  # 20 s later: still held back
    assert wire.answers(phone) == [429]
    await wire.rounds(RetryPolicy(backoff=0.1), 3, 15)
    assert wire.answers(phone) == [429, 200]
    assert (await row(wire.runner, nid)).state is S.SENT


async def test_a_huge_retry_after_is_capped(wire: Wire) -> None:
    phone = "34600004291"
    (nid,) = await enqueue(wire.runner, _to(phone))
    await wire.rounds(RetryPolicy(backoff=0.1), 1, 0)
    await wire.rounds(RetryPolicy(backoff=0.1), 4, 15 * 60)  # an hour: far past any sane cap
    assert wire.answers(phone) == [429, 200]
    assert (await row(wire.runner, nid)).state is S.SENT


@pytest.mark.parametrize("phone", ["34600007001", "34600007002"], ids=["late", "never"])
async def test_taken_but_not_answered_is_in_doubt_and_never_sent_again(
    wire: Wire, phone: str
) -> None:
    (nid,) = await enqueue(wire.runner, _to(phone))
    await wire.rounds(RetryPolicy(attempts=5, backoff=1), 4, 3600)
    doubt = await row(wire.runner, nid)
    assert doubt.state is S.IN_DOUBT
    assert wire.taken(phone) == 1  # the provider has it: sending again would send it twice
    assert wire.sandbox.state.attempts[(INSTANCE, phone)] == 1


async def test_a_refused_connection_is_retried_and_never_in_doubt(wire: Wire) -> None:
    phone = "34600000777"
    (nid,) = await enqueue(wire.runner, _to(phone))
    await wire.gate.close()
    await wire.rounds(RetryPolicy(attempts=4, backoff=1, max_backoff=2), 1, 5)
    waiting = await row(wire.runner, nid)
    # Nothing was written to the provider: a plain retry, never in doubt.
    assert waiting.state is S.QUEUED
    assert wire.sandbox.state.counts["arrived"] == 0
    await wire.gate.open()
    await wire.rounds(RetryPolicy(attempts=4, backoff=1, max_backoff=2), 2, 5)
    assert (await row(wire.runner, nid)).state is S.SENT
    assert wire.taken(phone) == 1


async def test_an_outage_spends_no_attempts(wire: Wire) -> None:
    phones = [f"3460000{i:04d}" for i in range(811, 815)]
    ids = await enqueue(wire.runner, *(_to(p) for p in phones))
    await wire.gate.close()
    await wire.rounds(RetryPolicy(attempts=2, backoff=1, max_backoff=2), 6, 600)
    assert [(await row(wire.runner, i)).state for i in ids] == [S.QUEUED] * 4
    await wire.gate.open()
    await wire.rounds(RetryPolicy(attempts=2, backoff=1, max_backoff=2), 3, 600)
    assert [(await row(wire.runner, i)).state for i in ids] == [S.SENT] * 4
    assert [wire.taken(p) for p in phones] == [1] * 4


# --- ack faults: the sandbox posting to nextstep's webhook endpoint ------------------------

# ``readers`` expects ``read`` within 15 minutes, else a CRM task.
READERS = f"""
  - id: readers
    trigger: {{http: {{path: /events/loans}}}}
    to: "{{{{ event.phone }}}}"
    send:
      channel: whatsapp
      template: next_step_short
      namespace: {NAMESPACE}
      language: en
      text: "<<1>>, your next step: <<2>>"
      params: {{1: "{{{{ event.first_name | title }}}}", 2: "read this"}}
    policy:
      expect: read
      within: 15m
      fallback:
        - on: [expired]
          send: {{channel: crm, body: {{case: "{{{{ event.application_id }}}}"}}}}
"""
FAILED = {"status": "failed", "error": "Message undeliverable", "code": 131026}
ACK_SCRIPTS: list[Mapping[str, Any]] = [
    # webhook retries: the same ack posted again
    {
        "match": "0201",
        "acks": ["sent", {"status": "delivered", "repeat": 3}, {"status": "read", "repeat": 2}],
    },
    {"match": "0202", "acks": ["sent", {**FAILED, "repeat": 3}]},
    # reordered: ``sent`` and ``delivered`` posted after ``read``
    {
        "match": "0203",
        "acks": [
            {"status": "sent", "late": "0.4s"},
            {"status": "delivered", "late": "0.2s"},
            "read",
        ],
    },
    # missing: only ``sent`` is posted
    {
        "match": "0204",
        "acks": ["sent", {"status": "delivered", "post": False}, {"status": "read", "post": False}],
    },
    # missing ``read`` for a rule that expects it (defect 15.5)
    {"match": "0205", "acks": ["sent", "delivered", {"status": "read", "post": False}]},
    # late: ``delivered`` arrives after the notification expired
    # (3 s: time enough for the test to expire it first on a loaded machine)
    {"match": "0206", "acks": ["sent", {"status": "delivered", "late": "3s"}]},
]


@pytest.fixture
async def w(tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    async with world(
        tmp_path, clock, scenario={"recipients": ACK_SCRIPTS}, rules=RULES + READERS
    ) as running:
        yield running


def acks_of(w: World, nid: int) -> list[tuple[str, bool]]:
    """``(status, applied)`` of every ack in a notification's history, sorted."""
    lines = w.ledger.store.history(nid)
    return sorted((h.detail["status"], h.detail["applied"]) for h in lines if h.kind == "ack")


async def test_a_webhook_retry_is_applied_once(w: World) -> None:
    nid = w.ledger.enqueue(person(201), "main")
    await w.dispatch()
    await w.acks(6)  # sent, delivered x3, read x2
    assert w.ledger.state(nid) is S.READ
    applied = [status for status, took in acks_of(w, nid) if took]
    assert applied == ["delivered", "read"]  # each status moved the state once
    assert w.ledger.children(nid) == []


async def test_a_repeated_failed_ack_falls_back_once(w: World) -> None:
    nid = w.ledger.enqueue(person(202), "main")
    await w.dispatch()
    await w.acks(4)  # sent, failed x3
    await w.dispatch()
    assert w.ledger.state(nid) is S.FAILED
    [child] = w.ledger.children(nid)  # one fallback, not three
    assert child.fallback_step == 0


async def test_reordered_acks_never_move_the_state_back(w: World) -> None:
    nid = w.ledger.enqueue(person(203), "main")
    await w.dispatch()
    await w.acks(3)
    assert [a["status"] for a in w.sandbox.posted_acks()] == ["read", "delivered", "sent"]
    assert w.ledger.state(nid) is S.READ
    assert ("read", True) in acks_of(w, nid)
    assert ("delivered", True) not in acks_of(w, nid)  # came after read: history only


async def test_missing_acks_are_recovered_by_hookinfo_polling(w: World) -> None:
    nid = w.ledger.enqueue(person(204), "main")
    await w.dispatch()
    await w.acks(1)
    provider_id = w.ledger.get(nid).provider_id
    assert provider_id is not None
    await w.produced(provider_id, 3)
    assert w.ledger.state(nid) is S.SENT
    w.clock.advance(61)
    assert await w.poll(poll_after=60) == 1
    assert w.ledger.state(nid) is S.READ


async def test_a_missing_read_ack_is_recovered_before_the_fallback(w: World) -> None:
    nid = w.ledger.enqueue(person(205), "readers")
    await w.dispatch()
    await w.acks(2)
    provider_id = w.ledger.get(nid).provider_id
    assert provider_id is not None
    await w.produced(provider_id, 3)
    assert w.ledger.state(nid) is S.DELIVERED
    w.clock.advance(61)
    await w.poll(poll_after=60)
    w.clock.advance(15 * 60)
    await w.dispatch()
    assert w.ledger.state(nid) is S.READ
    assert w.ledger.children(nid) == []  # read in time: no CRM task


async def test_a_late_ack_does_not_revive_an_expired_notification(w: World) -> None:
    nid = w.ledger.enqueue(person(206), "main")
    await w.dispatch()
    await w.acks(1)
    w.clock.advance(15 * 60 + 1)
    await w.dispatch()  # expect: delivered within 15m: expired, CRM fallback
    assert len(w.sandbox.posted_acks()) == 1, "delivered came before the expiry: test too slow"
    assert w.ledger.state(nid) is S.EXPIRED
    await w.acks(2)  # the late delivered arrives
    await w.dispatch()
    assert w.ledger.state(nid) is S.EXPIRED
    assert ("delivered", False) in acks_of(w, nid)  # kept in the history, not applied
    assert [c.channel for c in w.ledger.children(nid)] == ["crm"]
