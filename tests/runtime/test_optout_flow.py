"""Opt-outs and client replies end to end, over real HTTP on loopback: the daemon (in this event
loop, on an injected clock), the 1MSG sandbox posting what people write to the daemon's
webhook, a CRM receiver, and a real ledger of each backend.

A client writes STOP (any case, accents, spaces): what is queued for them — a retry waiting
for its time — is skipped, a fallback due later is written skipped while a CRM task (exempt)
still goes, a new event to them is skipped and nothing more reaches the sandbox; START lifts
it. A reply quoting one of our messages becomes an event carrying ``reply_to``, which a rule
forwards to the CRM, once, however often 1MSG posts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import OPTED_OUT, Notification, Store
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import State
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.daemon import Daemon, DaemonOptions
from tests.support.sandbox import Receiver, SandboxHandle, running_receiver, running_sandbox

INSTANCE, EVENT_TOKEN, OPTOUT_TOKEN = "test", "event-token-0123456789", "optout-token-0123456789"
OFFLINE = "34600000010"  # the sandbox accepts, acks sent, never delivered: expires
FLAKY = "34600000002"  # the sandbox answers 500 twice: a retry waits
PLAIN = "34600000123"  # sent, delivered, read
CONFIRM = "You will get no more messages. Write START to get them again."
SEND = (
    f"{{channel: whatsapp, template: next_step_short, namespace: {NAMESPACE}, language: en, "
    'text: "<<1>>, your next step: <<2>>", '
    'params: {1: "{{ event.name }}", 2: "step {{ event.key }}"}}'
)


def _config(root: Path, store: str, sandbox: SandboxHandle, crm: Receiver) -> Path:
    (root / "rules").mkdir()
    (root / "rules" / "rules.yaml").write_text(
        textwrap.dedent(
            f"""\
            rules:
              - id: docs
                trigger: {{http: {{path: /events/loans}}}}
                to: "{{{{ event.phone }}}}"
                dedupe: "{{{{ event.key }}}}"
                send: {SEND}
                policy:
                  retry: {{attempts: 3, backoff: 6h, max_backoff: 12h}}
                  expect: delivered
                  within: 15m
                  fallback:
                    - on: [expired]
                      send: {SEND}
              - id: docs-task
                trigger: {{http: {{path: /events/tasks}}}}
                to: "{{{{ event.phone }}}}"
                send: {SEND}
                optout: {{exempt: [crm]}}
                policy:
                  expect: delivered
                  within: 15m
                  fallback:
                    - on: [expired]
                      send: {{channel: crm, body: {{task: "call {{{{ event.phone }}}}",
                                                  case: "{{{{ event.key }}}}"}}}}
              - id: forward-replies
                trigger: {{inbound: {{channel: whatsapp, every: 1s}}}}
                when: event.reply_to is not none and not event.keyword
                dedupe: "{{{{ event.id }}}}"
                send:
                  channel: crm
                  body:
                    case: "{{{{ event.reply_to.event.key }}}}"
                    rule: "{{{{ event.reply_to.rule }}}}"
                    notification: "{{{{ event.reply_to.id }}}}"
                    from: "{{{{ event.from }}}}"
                    text: "{{{{ event.text }}}}"
            """
        ),
        encoding="utf-8",
    )
    path = root / "nextstep.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            store: "{store}"
            rules: rules/
            default_country: ES
            server:
              listen: 127.0.0.1:0
              event_token: {EVENT_TOKEN}
              webhook_secret: hook-secret-0123456789
              optout_token: {OPTOUT_TOKEN}
            channels:
              whatsapp:
                type: 1msg
                base_url: {sandbox.base_url}
                instance_id: {INSTANCE}
                token: {sandbox.token}
                recipient_spacing: 0s
                keywords:
                  confirm: {{stop: "{CONFIRM}"}}
              crm:
                type: webhook
                url: {crm.url}
            """
        ),
        encoding="utf-8",
    )
    return path


@dataclass
class Flow:
    """The running pieces and the steps a test takes with them."""

    daemon: Daemon
    clock: FakeClock
    sandbox: SandboxHandle
    crm: Receiver
    ledger: Store
    http: httpx.AsyncClient

    async def until(self, what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Move the engine's clock in small steps until ``probe()`` is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.clock.advance(0.25)
            await asyncio.sleep(0.01)

    async def event(self, path: str, **data: Any) -> int:
        answer = await self.http.post(
            path, json=data, headers={"Authorization": f"Bearer {EVENT_TOKEN}"}
        )
        assert answer.status_code == 202, answer.text
        body = answer.json()
        return int(body["notifications"][0]) if body["notifications"] else -1

    async def writes(self, phone: str, text: str, **extra: Any) -> dict[str, Any]:
        """The person writes to our number: the sandbox posts it to the daemon's webhook."""
        answer = await self.http.post(
            f"{self.sandbox.base_url}/_sandbox/{INSTANCE}/inbound",
            json={"from": phone, "text": text, **extra},
            headers={"Authorization": f"Bearer {self.sandbox.token}"},
        )
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        assert data["answers"] and all(a == 200 for a in data["answers"]), data
        return data

    def get(self, nid: int) -> Notification:
        found = self.ledger.get(nid)
        assert found is not None
        return found

    def sends_to(self, phone: str) -> int:
        return sum(1 for r in self.sandbox.sends() if r.body and r.body.get("phone") == phone)

    def children(self, nid: int) -> list[Notification]:
        rows = [n for s in State for n in self.ledger.list(state=s, limit=1000)]
        return [n for n in rows if n.parent_id == nid]


@contextlib.asynccontextmanager
async def running_flow(root: Path, store: str) -> AsyncIterator[Flow]:
    clock = FakeClock(time.time())
    async with running_sandbox(ack_delay=0.01) as sandbox, running_receiver(path="/crm") as crm:
        config = load_config(_config(root, store, sandbox, crm))
        daemon = Daemon(config, clock, options=DaemonOptions(watch=False, health_every=3600))
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        ledger = open_store(config.store)
        try:
            async with asyncio.timeout(20):
                while not daemon.ready.is_set():
                    assert not task.done(), task.exception()
                    await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://{daemon.listen}", timeout=10) as http:
                flow = Flow(daemon, clock, sandbox, crm, ledger, http)
                # the daemon registers its webhook with the sandbox at start
                await flow.until("the webhook", lambda: sandbox.state.instance(INSTANCE).webhooks)
                yield flow
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await asyncio.gather(task, return_exceptions=True)
            ledger.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.timeout(120)
async def test_stop_start_and_a_reply(tmp_path: Path, ledger_url: str) -> None:
    skipped_before = _metric("nextstep_optout_skipped_total", rule="docs")
    async with running_flow(tmp_path, ledger_url) as flow:
        # before anyone writes: a retry waits (6 h), two messages wait to be delivered (15 m)
        retry = await flow.event("/events/loans", phone=FLAKY, name="Bo", key="b1")
        waiting = await flow.event("/events/loans", phone=OFFLINE, name="Al", key="a1")
        task = await flow.event("/events/tasks", phone=OFFLINE, name="Al", key="a2")
        await flow.until("the retry", lambda: flow.get(retry).attempts == 1)
        assert flow.get(retry).state is State.QUEUED
        await flow.until(
            "sent", lambda: {flow.get(waiting).state, flow.get(task).state} == {State.SENT}
        )
        sent_to_offline = flow.sends_to(OFFLINE)

        # STOP, written every way people write it
        await flow.writes(FLAKY, "  Bája! ")
        await flow.writes(OFFLINE, " stop ")
        assert (flow.get(retry).state, flow.get(retry).reason) == (State.SKIPPED, OPTED_OUT)
        assert {(o.recipient, o.channel, o.how) for o in flow.ledger.optouts()} == {
            (FLAKY, "whatsapp", "keyword"),
            (OFFLINE, "whatsapp", "keyword"),
        }
        # the confirmation, inside the window the message opened
        await flow.until("confirmations", lambda: len(flow.sandbox.state.texts) == 2)
        assert {t["phone"] for t in flow.sandbox.state.texts} == {FLAKY, OFFLINE}
        assert all(t["body"] == CONFIRM for t in flow.sandbox.state.texts)

        # the 15 minutes pass: the WhatsApp fallback is skipped, the CRM task still goes
        flow.clock.advance(16 * 60)
        [fallback] = await flow.until("the fallback", lambda: flow.children(waiting))
        assert (fallback.state, fallback.reason) == (State.SKIPPED, OPTED_OUT)
        await flow.crm.wait_for(1)
        assert flow.crm.bodies == [{"task": f"call {OFFLINE}", "case": "a2"}]

        # a new event to them: skipped, and nothing more reaches the sandbox
        later = await flow.event("/events/loans", phone=OFFLINE, name="Al", key="a3")
        assert later == -1  # not queued
        [row] = flow.ledger.find(dedupe_key="a3")
        assert (row.state, row.reason) == (State.SKIPPED, OPTED_OUT)
        history = [h.detail for h in flow.ledger.history(row.id)]
        assert history[-1]["optout"]["how"] == "keyword"
        assert flow.sends_to(OFFLINE) == sent_to_offline
        assert flow.sends_to(FLAKY) == 1  # the first attempt only
        skipped = _metric("nextstep_optout_skipped_total", rule="docs") - skipped_before
        assert skipped == 3  # the retry, the fallback, the new event
        metrics = (await flow.http.get("/metrics")).text
        assert 'nextstep_optouts_total{action="added",how="keyword"}' in metrics

        # START lifts it
        await flow.writes(OFFLINE, "START")
        assert [o.recipient for o in flow.ledger.optouts()] == [FLAKY]
        again = await flow.event("/events/loans", phone=OFFLINE, name="Al", key="a4")
        await flow.until("sent again", lambda: flow.sends_to(OFFLINE) == sent_to_offline + 1)
        assert flow.get(again).state in (State.SENDING, State.SENT)

        # a reply to one of our messages, posted twice by 1MSG: one event, forwarded
        first = await flow.event("/events/loans", phone=PLAIN, name="Cy", key="c1")
        await flow.until("sent", lambda: flow.get(first).provider_id)
        ours = flow.get(first).provider_id
        reply = await flow.writes(PLAIN, "I already uploaded them", quoted=ours, repeat=2)
        await flow.until("forwarded", lambda: len(flow.crm.bodies) == 2)
        assert flow.crm.bodies[1] == {
            "case": "c1",
            "rule": "docs",
            "notification": str(first),
            "from": PLAIN,
            "text": "I already uploaded them",
        }
        await flow.until(
            "the trigger to catch up",
            lambda: (
                flow.ledger.get_progress("inbound:whatsapp") == str(flow.ledger.last_inbound_id())
            ),
        )
        forwarded = flow.ledger.find(dedupe_key=reply["id"])
        assert [n.rule_id for n in forwarded] == ["forward-replies"]
        kept = flow.ledger.inbound_after(0)
        assert [m.text for m in kept] == ["  Bája! ", " stop ", "START", "I already uploaded them"]
        assert kept[-1].reply_to is not None and kept[-1].reply_to.id == first
        assert len(flow.crm.bodies) == 2


@pytest.mark.timeout(60)
async def test_echoes_and_other_words_change_nothing(tmp_path: Path, ledger_url: str) -> None:
    async with running_flow(tmp_path, ledger_url) as flow:
        await flow.writes(PLAIN, "STOP", from_me=True)  # our own message, echoed
        await flow.writes(PLAIN, "stop sending me the old form")  # not a stop word
        await flow.writes(PLAIN, "stop", quoted="wamid.unknown")
        assert [m.text for m in flow.ledger.inbound_after(0)] == [
            "stop sending me the old form",
            "stop",
        ]
        assert [o.recipient for o in flow.ledger.optouts()] == [PLAIN]
