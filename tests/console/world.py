"""A real run for the console tests, all on loopback: the 1MSG sandbox (scripted recipients),
the daemon in this event loop with the console at /ui, and a second connection to its ledger.

Recipients (by their last digits): ``…0001`` fails (Meta 131026) and so does its fallback,
``…2221`` is acked up to delivered, ``…3331`` only sent (it expires after ``within``),
``…0005`` answers after the channel's read timeout (in doubt), any other is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from nextstep.adapters.channels.onemsg.sandbox.scenarios import scenario_from
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.ledger import open_store
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.console.passwords import hash_password
from nextstep.engine.runtime.daemon import Daemon, DaemonOptions
from tests.console.ledger import Ledger, console_ledger
from tests.support.sandbox import running_sandbox
from tests.support.waiting import until

EVENT_TOKEN = "console-event-token"
OPERATOR, VIEWER, PASSWORD = "olga", "victor", "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "console"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONES = {
    "read": "+34600114447",
    "delivered": "+34600112221",
    "failed": "+34600110001",
    "expired": "+34600113331",
    "in_doubt": "+34600110005",
}


NEXT_STEP = (
    'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>> '
    "If you need help — we are here."
)


def rules_yaml() -> str:
    """One rule on an HTTP path: expects delivered within 2 s, falls back on failure."""
    return textwrap.dedent(
        f"""\
        rules:
          - id: loan-docs
            description: Ask for documents when a loan reaches that stage
            trigger: {{http: {{path: /events/loans}}}}
            when: event.stage == "docs"
            to: "{{{{ event.phone }}}}"
            dedupe: "{{{{ event.key }}}}"
            send:
              channel: whatsapp
              template: next_step
              namespace: {NAMESPACE}
              language: en
              text: '{NEXT_STEP}'
              params:
                1: "{{{{ event.name | title }}}}"
                2: "loan application #{{{{ event.key }}}}"
                3: "upload documents"
            policy:
              retry: {{attempts: 1}}
              expect: delivered
              within: 2s
              fallback:
                - on: [failed]
                  send:
                    channel: whatsapp
                    template: next_step_short
                    namespace: {NAMESPACE}
                    language: en
                    text: "<<1>>, your next step: <<2>>"
                    params: {{1: "{{{{ event.name | title }}}}", 2: "call us"}}
            examples:
              - event: {{name: maria, key: "A-1", stage: docs, phone: "+34 600 111 222"}}
                expect: {{to: "34600111222"}}
              - event: {{name: ana, key: "A-2", stage: approved, phone: "+34600000000"}}
                expect: skip
        """
    )


def config_yaml(sandbox_url: str, store: str) -> str:
    """The daemon's config on the ledger ``store``, with an operator and a viewer."""
    hashed = hash_password(PASSWORD, n=2**10)
    return textwrap.dedent(
        f"""\
        store: {store}
        rules: rules/
        default_country: ES
        server:
          listen: 127.0.0.1:0
          event_token: {EVENT_TOKEN}
          webhook_secret: console-webhook-secret
          console:
            session_secret: {"s" * 40}
            refresh: 0.5s
            users:
              - {{name: {OPERATOR}, role: operator, password_hash: "{hashed}"}}
              - {{name: {VIEWER}, role: viewer, password_hash: "{hashed}"}}
        channels:
          whatsapp:
            type: 1msg
            base_url: {sandbox_url}
            instance_id: test
            token: sandbox-token
            timeout: 1
        """
    )


@dataclass
class World:
    """The running daemon, its URL and its ledger."""

    base_url: str
    store: Ledger
    daemon: Daemon

    async def post_event(self, **event: Any) -> None:
        """POST one event to the rule's HTTP path."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            answer = await client.post(
                "/events/loans", json=event, headers={"Authorization": f"Bearer {EVENT_TOKEN}"}
            )
        assert answer.status_code == 202, answer.text

    def states(self) -> dict[str, int]:
        """Notifications by state, all rules."""
        found: dict[str, int] = {}
        for (_, state), n in self.store.counts().items():
            found[state] = found.get(state, 0) + n
        return found

    async def settled(self, timeout: float = 20.0) -> None:
        """Wait until the run reaches its expected end states."""
        wanted = {"read": 1, "delivered": 1, "failed": 2, "expired": 1, "in_doubt": 1}
        try:
            await until(
                lambda: all(self.states().get(s, 0) >= n for s, n in wanted.items()), timeout
            )
        except TimeoutError:
            raise AssertionError(f"the run did not settle: {self.states()}") from None


@contextlib.asynccontextmanager
async def running_world(root: Path, store: str = "sqlite:///ledger.db") -> AsyncIterator[World]:
    """The sandbox, the daemon (console on, its ledger at ``store``) and the events of every
    kind, settled."""
    scenario = scenario_from(
        {
            "recipients": [
                {"match": "2221", "acks": ["sent", "delivered"]},
                {"match": "3331", "acks": ["sent"]},
            ]
        },
        slow=3.0,
    )
    async with running_sandbox(scenario=scenario, ack_delay=0.01, token="sandbox-token") as box:
        (root / "rules").mkdir(parents=True)
        (root / "rules" / "loans.yaml").write_text(rules_yaml(), encoding="utf-8")
        (root / "nextstep.yaml").write_text(config_yaml(box.base_url, store), encoding="utf-8")
        config = load_config(root / "nextstep.yaml")
        daemon = Daemon(config, options=DaemonOptions(watch=False))
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await asyncio.wait_for(daemon.ready.wait(), 20)
            ledger = console_ledger(open_store(config.store))
            world = World(f"http://{daemon.listen}", ledger, daemon)
            for i, (kind, phone) in enumerate(PHONES.items()):
                await world.post_event(name=kind, key=f"K-{i}", stage="docs", phone=phone)
            await world.settled()
            yield world
            ledger.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


def chromium() -> str:
    """Debian's chromium (never a downloaded browser)."""
    found = shutil.which("chromium")
    assert found, "install Debian's chromium (apt-get install -y chromium)"
    return found


def shot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: docs/console/ with NEXTSTEP_UPDATE_SCREENSHOTS=1, else a temp
    folder."""
    if os.environ.get("NEXTSTEP_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        return SHOTS
    return tmp_path
