"""The end-to-end world of the status tests, all on loopback: the 1MSG sandbox, nextstep's
webhook endpoint served by uvicorn, a CRM receiver, an SMTP server (aiosmtpd), a real ledger,
the real channels and the dispatcher, on an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.registration import register_webhook, webhook_url
from nextstep.adapters.channels.onemsg.sandbox import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.scenarios import scenario_from
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.clock import FakeClock
from nextstep.engine.delivery.acksink import AckSink
from nextstep.engine.delivery.poller import PollSettings, poll_once
from nextstep.engine.delivery.timers import after_attempts
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.plugins import Channel, channel_class
from nextstep.engine.runtime.server import create_app
from nextstep.engine.sending.dispatcher import Dispatcher
from tests.delivery.kit import Ledger
from tests.delivery.serving import serve
from tests.support.sandbox import Receiver, SandboxHandle, running_receiver, running_sandbox
from tests.support.waiting import until

SECRET = "s3cret"
MAX_BODY = 8 * 1_048_576
NEXT_STEP = (
    'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>> '
    "If you need help — we are here."
)
RULES = f"""
rules:
  - id: main
    trigger: {{http: {{path: /events/loans}}}}
    to: "{{{{ event.phone }}}}"
    send: &send
      channel: whatsapp
      template: next_step
      namespace: {NAMESPACE}
      language: en
      text: '{NEXT_STEP}'
      params:
        1: "{{{{ event.first_name | title }}}}"
        2: "loan application #{{{{ event.application_id }}}}"
        3: "upload documents ({{{{ event.stage }}}})"
    policy:
      retry: {{attempts: 2, backoff: 30s}}
      expect: delivered
      within: 15m
      fallback:
        - on: [failed]
          send: {{channel: whatsapp, template: next_step_short, namespace: {NAMESPACE},
                 language: en, text: "<<1>>, your next step: <<2>>",
                 params: {{1: "{{{{ event.first_name | title }}}}",
                          2: "call us ({{{{ failure.class }}}})"}}}}
        - on: [expired]
          send: {{channel: crm, body: {{case: "{{{{ event.application_id }}}}",
                                      status: "{{{{ failure.status }}}}",
                                      reason: "{{{{ failure.reason }}}}"}}}}
        - on: [failed]
          send: {{channel: mail, to: ops@example.com,
                 subject: "case {{{{ event.application_id }}}} unreachable",
                 body: "{{{{ failure.reason }}}} after {{{{ failure.attempts }}}} attempts"}}
  - id: windowed
    trigger: {{http: {{path: /events/loans}}}}
    to: "{{{{ event.phone }}}}"
    send: *send
    policy:
      send_window: {{days: [mon-fri], hours: "09:00-18:00", timezone: "{{{{ event.tz }}}}"}}
  - id: reader
    trigger: {{http: {{path: /events/loans}}}}
    to: "{{{{ event.phone }}}}"
    send: *send
    policy:
      expect: read
      within: 15m
      fallback:
        - on: [expired]
          send: {{channel: crm, body: {{case: "{{{{ event.application_id }}}}",
                                      status: "{{{{ failure.status }}}}"}}}}
  - id: latest
    trigger: {{http: {{path: /events/loans}}}}
    to: "{{{{ event.phone }}}}"
    supersedes: "{{{{ event.application_id }}}}"
    send: *send
"""
# Recipients ending in 0010 are accepted and acked "sent" only: they expire.
SCENARIO = {"recipients": [{"match": "0010", "acks": ["sent"]}]}


class Mailbox:
    """An aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class World:
    """Everything an end-to-end test drives."""

    ledger: Ledger
    runner: LedgerRunner
    sandbox: SandboxHandle
    crm: Receiver
    mailbox: Mailbox
    channels: Mapping[str, Channel]
    dispatcher: Dispatcher

    @property
    def clock(self) -> FakeClock:
        return self.ledger.clock

    async def dispatch(self) -> None:
        """Send what is due now, then run the policy loop once."""
        await self.dispatcher.run_until_idle()
        await self.runner.call(self.ledger.settle)

    async def acks(self, count: int) -> None:
        """Wait until the sandbox has posted ``count`` acks that nextstep accepted."""
        await self.sandbox.wait_acks(count, timeout=10)

    async def produced(self, provider_id: str, count: int) -> None:
        """Wait until the sandbox has produced ``count`` statuses of a message (hookInfo)."""
        state = self.sandbox.state
        await until(lambda: len(state.hooks_for(provider_id, time.time())) >= count)

    async def poll(self, **settings: Any) -> int:
        """One round of the hookInfo poller."""
        hookinfo: Any = {"whatsapp": self.channels["whatsapp"]}
        return await poll_once(
            self.runner, hookinfo, self.clock, self.ledger.ctx, PollSettings(**settings)
        )

    def sent_templates(self) -> list[tuple[str, str]]:
        """``(template, phone)`` of every message the sandbox accepted or refused."""
        return [(r.body["template"], r.body["phone"]) for r in self.sandbox.sends()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _smtp() -> tuple[Controller, Mailbox]:
    """aiosmtpd on a free loopback port (its readiness check cannot use port 0)."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    return controller, mailbox


@contextlib.asynccontextmanager
async def world(
    folder: Path,
    clock: FakeClock,
    store: str | None = None,
    *,
    scenario: Mapping[str, Any] = SCENARIO,
    rules: str = RULES,
) -> AsyncIterator[World]:
    """Start every server, load the rules against them, register the ack webhook; the ledger
    is ``store`` (an empty one's URL) or a new SQLite file in ``folder``; ``scenario`` scripts
    the sandbox (tests/reliability drives its faults through it), ``rules`` replaces RULES."""
    controller, mailbox = _smtp()
    config = SandboxConfig(scenario=scenario_from(scenario))
    try:
        async with running_sandbox(config) as sandbox, running_receiver(path="/crm") as crm:
            ledger = Ledger.open(
                folder,
                clock,
                store,
                onemsg_url=sandbox.base_url,
                crm_url=crm.url,
                smtp_port=controller.port,
                rules=rules,
            )
            async with _engine(ledger, sandbox, crm, mailbox) as running:
                yield running
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def _engine(
    ledger: Ledger, sandbox: SandboxHandle, crm: Receiver, mailbox: Mailbox
) -> AsyncIterator[World]:
    """nextstep's side: channels, the webhook endpoint on uvicorn, the dispatcher."""
    clock = ledger.clock
    runner = LedgerRunner(ledger.store)
    built: dict[str, Channel] = {
        c.name: channel_class(c.type)(c.name, c.settings, clock=clock)
        for c in ledger.config.channels.values()
    }
    routes = OneMsgChannel.ack_routes(AckSink(runner, clock, ledger.ctx), SECRET, MAX_BODY)
    try:
        async with serve(create_app(lambda: {"status": "ok"}, routes)) as ours:
            whatsapp: Any = built["whatsapp"]
            await register_webhook(whatsapp, webhook_url(ours, SECRET))
            rules = ledger.config.rules
            dispatcher = Dispatcher(
                runner,
                built,
                lambda n: rules[n.rule_id].policy.retry,
                clock,
                rng=random.Random(3),
                after_write=after_attempts(ledger.ctx),
            )
            yield World(ledger, runner, sandbox, crm, mailbox, built, dispatcher)
    finally:
        await asyncio.gather(*(c.aclose() for c in built.values()))
        runner.close()
