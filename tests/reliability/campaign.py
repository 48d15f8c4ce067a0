"""The crash campaign: the real daemon (``nextstep run``) on notifications from CSV drops and
HTTP events, SIGKILLed at seeded random moments and restarted each time, then compared with
the sandbox's record of what it accepted.

Used by tests/reliability/test_crash.py (a CI-sized run) and bench/crash.py (a larger one).

The moments: each round starts a daemon, hands it the round's share of the work (CSV files
dropped into the inbox, HTTP batches posted with an ``Idempotency-Key``), then waits until the
sandbox has accepted a seeded random number of further messages and SIGKILLs the daemon. The
kill moment is a count, not a time, so the daemon is always caught in the middle of sending
whatever the machine's load. A batch whose POST died with the daemon is posted again after the
restart (same key: the ledger answers it, or takes it if the first never committed).

What counts (:class:`Result`):

* lost: a generated event with no notification, or one that is not ``sent``/``delivered``/
  ``read``/``in_doubt`` at the end, or one marked sent whose message the sandbox never
  accepted;
* twice: a recipient (one per notification) to whom the sandbox accepted more than one
  message;
* in doubt per kill: how many notifications the restart turned ``in_doubt``, beside the
  channel's ``max_in_flight``;
* listed: the in-doubt ids ``nextstep status --in-doubt --json`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN, SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.server import Running, serving
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from tests.runtime.harness import EVENT_TOKEN, INSTANCE, WEBHOOK_SECRET, DaemonProcess, Workspace

HTTP_PATH = "/events/crash"
GOOD_STATES = frozenset({"sent", "delivered", "read"})
OPEN_STATES = ("queued", "sending")


@dataclass(frozen=True)
class Plan:
    """The size of one campaign."""

    notifications: int = 2000
    kills: int = 5
    seed: int = 15
    max_in_flight: int = 8
    latency: float = 0.02  # the sandbox's delay before each answer: sends stay in flight
    csv_rows: int = 150  # rows per dropped file
    http_batch: int = 100  # events per POST
    finish_timeout: float = 120.0


@dataclass
class Kill:
    """What one SIGKILL left behind."""

    index: int
    accepted_at_kill: int  # the sandbox's accepted count when the daemon died
    leased_at_kill: int  # rows in `sending` just after the kill
    in_doubt: int  # rows the restart turned in_doubt
    phones: set[str] = field(default_factory=set)  # their recipients
    taken: int = 0  # how many of them the sandbox had in fact accepted


@dataclass
class Result:
    """The campaign's figures (see the module docstring)."""

    plan: Plan
    kills: list[Kill] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    in_doubt: set[int] = field(default_factory=set)
    listed: set[int] = field(default_factory=set)
    accepted: int = 0
    in_doubt_taken: int = 0  # in-doubt notifications the sandbox had in fact accepted
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """Per-kill figures and the totals, for people."""
        out = [
            f"kill {k.index}: accepted so far {k.accepted_at_kill}, leased at kill "
            f"{k.leased_at_kill}, in doubt after restart {k.in_doubt} of which the sandbox "
            f"had accepted {k.taken} (max_in_flight {self.plan.max_in_flight})"
            for k in self.kills
        ]
        out.append(
            f"kills {len(self.kills)}, notifications {self.plan.notifications}, "
            f"lost {len(self.lost)}, twice {len(self.twice)}, "
            f"in doubt per kill {[k.in_doubt for k in self.kills]} "
            f"(total {len(self.in_doubt)}, listed {len(self.listed & self.in_doubt)}, "
            f"accepted by the sandbox {self.in_doubt_taken}), "
            f"sandbox accepted {self.accepted} messages, states {self.states}, "
            f"{self.seconds:.1f}s"
        )
        return out


def phone(index: int) -> str:
    """One recipient per notification; ending in 42 keeps clear of the sandbox's scripts."""
    return f"346{index:06d}42"


def config_text(sandbox_url: str, max_in_flight: int) -> str:
    """nextstep.yaml of the campaign: a SQLite ledger, the sandbox, a small in-flight cap."""
    return textwrap.dedent(
        f"""\
        store: "sqlite:///ledger.db"
        rules: rules/
        default_country: ES
        server:
          listen: 127.0.0.1:0
          event_token: {EVENT_TOKEN}
          webhook_secret: {WEBHOOK_SECRET}
        channels:
          whatsapp:
            type: 1msg
            base_url: {sandbox_url}
            instance_id: {INSTANCE}
            token: {DEFAULT_TOKEN}
            rate: 2000/s
            max_in_flight: {max_in_flight}
        """
    )


def rules_text() -> str:
    """Two rules: CSV drops and HTTP events, the same template, dedupe on the event's key."""
    send = textwrap.indent(
        textwrap.dedent(
            f"""\
            to: "{{{{ event.phone }}}}"
            dedupe: "{{{{ event.key }}}}"
            send:
              channel: whatsapp
              template: next_step_short
              namespace: {NAMESPACE}
              language: en
              text: "<<1>>, your next step: <<2>>"
              params:
                1: "{{{{ event.name }}}}"
                2: "step {{{{ event.key }}}}"
            """
        ),
        "    ",
    )
    return (
        "rules:\n"
        "  - id: from-csv\n"
        '    trigger: {csv: {path: "inbox/*.csv", settle: 50ms}}\n'
        + send
        + "  - id: from-http\n"
        + f"    trigger: {{http: {{path: {HTTP_PATH}}}}}\n"
        + send
    )


@dataclass
class Chunk:
    """A share of the work: a CSV file or an HTTP batch."""

    kind: str  # csv | http
    name: str
    keys: list[int]
    delivered: bool = False  # written to the inbox / answered 2xx


class Campaign:
    """One run of the plan in ``root`` against a sandbox served in this event loop."""

    def __init__(self, plan: Plan, root: Path, say: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.root = root
        self.say = say
        self.rng = random.Random(plan.seed)
        self.chunks = self._chunks()
        self.inbox = root / "inbox"

    def _chunks(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        index = 0
        while index < self.plan.notifications:
            kind = "csv" if len(chunks) % 2 == 0 else "http"
            size = self.plan.csv_rows if kind == "csv" else self.plan.http_batch
            keys = list(range(index, min(index + size, self.plan.notifications)))
            chunks.append(Chunk(kind, f"{kind}-{len(chunks):04d}", keys))
            index += len(keys)
        return chunks

    def ledger(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the ledger over a separate connection (empty before the first migration)."""
        path = self.root / "ledger.db"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

    def states(self) -> dict[str, int]:
        """Notifications per state."""
        return {
            str(s): int(n)
            for s, n in self.ledger("SELECT state, count(*) FROM notifications GROUP BY 1")
        }

    def drop_csv(self, chunk: Chunk) -> None:
        """Write a CSV file aside, then rename it into the inbox (as exporters should)."""
        self.inbox.mkdir(exist_ok=True)
        part = self.inbox / f"{chunk.name}.part"
        rows = "".join(f"+{phone(k)},k{k},Name {k}\n" for k in chunk.keys)
        part.write_text("phone,key,name\n" + rows, encoding="utf-8")
        part.replace(self.inbox / f"{chunk.name}.csv")
        chunk.delivered = True

    async def post(self, daemon: DaemonProcess, chunk: Chunk) -> None:
        """POST an HTTP batch; a connection lost with the daemon leaves it to be posted again."""
        events = [
            {"phone": f"+{phone(k)}", "key": f"k{k}", "name": f"Name {k}"} for k in chunk.keys
        ]
        headers = {"Authorization": f"Bearer {EVENT_TOKEN}", "Idempotency-Key": chunk.name}
        try:
            async with httpx.AsyncClient(base_url=daemon.base_url, timeout=30) as client:
                answer = await client.post(HTTP_PATH, json=events, headers=headers)
        except httpx.HTTPError:
            return
        if answer.status_code != 202 or answer.json().get("errors"):
            raise AssertionError(f"{chunk.name}: {answer.status_code} {answer.text[:300]}")
        chunk.delivered = True

    async def feed(self, daemon: DaemonProcess, chunks: list[Chunk]) -> None:
        """Hand over ``chunks`` one after another, while the daemon lives."""
        for chunk in chunks:
            if daemon.process.returncode is not None:
                return
            if chunk.kind == "csv":
                self.drop_csv(chunk)
            else:
                await self.post(daemon, chunk)

    async def run(self, sandbox: Running) -> Result:
        """Every round, the kills, the final run to the end, and the comparison."""
        started = time.monotonic()
        (self.root / "nextstep.yaml").write_text(
            config_text(sandbox.base_url, self.plan.max_in_flight), encoding="utf-8"
        )
        (self.root / "rules").mkdir(exist_ok=True)
        (self.root / "rules" / "crash.yaml").write_text(rules_text(), encoding="utf-8")
        workspace = Workspace(self.root, sandbox.base_url)
        result = Result(self.plan)
        rounds = self.plan.kills + 1
        share = -(-len(self.chunks) // rounds)
        in_doubt_before: set[str] = set()
        for round_index in range(rounds):
            daemon = await DaemonProcess.start(workspace, f"daemon-{round_index}")
            try:
                if result.kills:
                    result.kills[-1].phones = self._in_doubt() - in_doubt_before
                    result.kills[-1].in_doubt = len(result.kills[-1].phones)
                todo = [c for c in self.chunks[: share * (round_index + 1)] if not c.delivered]
                feeding = asyncio.create_task(self.feed(daemon, todo))
                if round_index == rounds - 1:
                    await feeding
                    await self._finish(daemon)
                    assert await daemon.stop() == 0
                    break
                before = sandbox.state.counts["accepted"]
                new = sum(len(c.keys) for c in todo)
                target = before + self.rng.randint(max(1, new // 10), max(2, new * 3 // 5))
                await self._until_accepted(sandbox, target, daemon)
                in_doubt_before = self._in_doubt()
                daemon.process.send_signal(signal.SIGKILL)
                await daemon.process.wait()
                feeding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeding
                leased = self.states().get("sending", 0)
                result.kills.append(
                    Kill(round_index + 1, sandbox.state.counts["accepted"], leased, 0)
                )
                self.say(
                    f"kill {round_index + 1}: SIGKILL after {target} accepted, {leased} leased"
                )
            finally:
                await daemon.kill()
        self._compare(sandbox, result)
        result.listed = self._listed()
        result.seconds = time.monotonic() - started
        return result

    def _in_doubt(self) -> set[str]:
        """The recipients of the in-doubt notifications (one recipient per notification)."""
        rows = self.ledger("SELECT recipient FROM notifications WHERE state = 'in_doubt'")
        return {str(r[0]).lstrip("+") for r in rows}

    async def _until_accepted(self, sandbox: Running, target: int, daemon: DaemonProcess) -> None:
        """Wait until the sandbox accepted ``target`` messages in all (or until the daemon ran
        out of work: it is killed at rest then)."""
        deadline = time.monotonic() + self.plan.finish_timeout
        checks = 0
        while sandbox.state.counts["accepted"] < target:
            if daemon.process.returncode is not None:
                raise AssertionError(f"the daemon died by itself:\n{daemon.log_text()[-3000:]}")
            checks += 1
            if checks % 50 == 0 and not self._open_work():
                return  # everything handed over is sent: a kill now is a kill at rest
            if time.monotonic() > deadline:
                raise AssertionError("the daemon made no progress towards the kill moment")
            await asyncio.sleep(0.005)

    def _open_work(self) -> bool:
        states = self.states()
        return any(states.get(s, 0) for s in OPEN_STATES) or any(
            c.kind == "csv" and (self.inbox / f"{c.name}.csv").exists() for c in self.chunks
        )

    async def _finish(self, daemon: DaemonProcess) -> None:
        """Post again what died with a daemon, then wait until every event has a settled
        notification."""
        for chunk in self.chunks:
            if chunk.delivered:
                continue
            if chunk.kind == "http":
                await self.post(daemon, chunk)
            else:
                self.drop_csv(chunk)
        deadline = time.monotonic() + self.plan.finish_timeout
        while True:
            missing = [c.name for c in self.chunks if not c.delivered]
            if missing:
                raise AssertionError(f"not handed over: {missing}")
            rows = self.ledger(
                "SELECT count(*) FROM notifications WHERE duplicate_of IS NULL "
                "AND state NOT IN ('queued', 'sending')"
            )
            if rows and rows[0][0] >= self.plan.notifications and not self._open_work():
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not finished after {self.plan.finish_timeout:.0f}s: {self.states()}"
                )
            await asyncio.sleep(0.05)

    def _compare(self, sandbox: Running, result: Result) -> None:
        accepted = Counter(m.phone for m in sandbox.state.messages.values())
        result.accepted = sum(accepted.values())
        for kill in result.kills:
            kill.taken = sum(1 for p in kill.phones if accepted.get(p))
        result.twice = sorted(p for p, n in accepted.items() if n > 1)
        result.states = self.states()
        rows = self.ledger(
            "SELECT id, dedupe_key, state, recipient FROM notifications WHERE duplicate_of IS NULL"
        )
        by_key = {str(key): (int(ident), str(state), str(to)) for ident, key, state, to in rows}
        for index in range(self.plan.notifications):
            found = by_key.get(f"k{index}")
            if found is None:
                result.lost.append(f"k{index}: no notification")
                continue
            ident, state, _ = found
            if state == "in_doubt":
                result.in_doubt.add(ident)
                result.in_doubt_taken += 1 if accepted.get(phone(index)) else 0
            elif state not in GOOD_STATES:
                result.lost.append(f"k{index}: #{ident} ended {state}")
            elif not accepted.get(phone(index)):
                result.lost.append(f"k{index}: #{ident} is {state}, the sandbox never took it")

    def _listed(self) -> set[int]:
        """The ids ``nextstep status --in-doubt --json`` lists (the command, as people run it)."""
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                "from nextstep.engine.commands.cli import main; main()",
                "status",
                "-c",
                str(self.root / "nextstep.yaml"),
                "--in-doubt",
                "--json",
                "--limit",
                str(self.plan.notifications + 1),
            ],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
            check=True,
        )
        return {int(doc["id"]) for doc in json.loads(run.stdout)}


async def run_campaign(plan: Plan, root: Path, say: Callable[[str], None] = print) -> Result:
    """Serve a sandbox and run ``plan`` in ``root`` (an empty folder)."""
    async with serving(SandboxConfig(latency=plan.latency, ack_delay=0.05)) as sandbox:
        return await Campaign(plan, root, say).run(sandbox)
