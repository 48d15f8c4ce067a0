"""Start the real daemon (``nextstep run``) as a subprocess on loopback, against the 1MSG
sandbox served in the test's own event loop, and wait on conditions (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.ledger import open_store
from nextstep.engine.runtime.server import HEALTH_KEY

T = TypeVar("T")
EVENT_TOKEN = "test-event-token"
WEBHOOK_SECRET = "test-webhook-secret"
INSTANCE = "test"


async def wait_for(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 20.0) -> T:
    """Call ``probe`` until it returns something other than None/False; fail after
    ``timeout`` saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


def rule_yaml(rule_id: str, trigger: str, label: str) -> str:
    """A rule sending next_step_short with ``label`` in its second parameter."""
    return textwrap.dedent(
        f"""\
        rules:
          - id: {rule_id}
            trigger:
              {trigger}
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
                2: "{label} {{{{ event.key }}}}"
        """
    )


@dataclass
class Workspace:
    """A folder with ``nextstep.yaml``, ``rules/`` and the ledger, pointed at a sandbox."""

    root: Path
    sandbox_url: str
    store: str = "sqlite:///ledger.db"  # or an empty PostgreSQL ledger's URL

    @property
    def config(self) -> Path:
        """The config file."""
        return self.root / "nextstep.yaml"

    @property
    def ledger(self) -> Path:
        """The SQLite ledger file."""
        return self.root / "ledger.db"

    def write_config(self) -> None:
        """nextstep.yaml: the ledger (SQLite unless ``store``), rules/, port 0, the sandbox."""
        (self.root / "rules").mkdir(exist_ok=True)
        self.config.write_text(
            textwrap.dedent(
                f"""\
                store: "{self.store}"
                rules: rules/
                default_country: ES
                server:
                  listen: 127.0.0.1:0
                  event_token: {EVENT_TOKEN}
                  webhook_secret: {WEBHOOK_SECRET}
                channels:
                  whatsapp:
                    type: 1msg
                    base_url: {self.sandbox_url}
                    instance_id: {INSTANCE}
                    token: {DEFAULT_TOKEN}
                """
            ),
            encoding="utf-8",
        )

    def write_rule(self, name: str, text: str) -> None:
        """Save a rule file the way editors do: write aside, then rename over."""
        target = self.root / "rules" / name
        temporary = target.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the ledger over a separate connection."""
        if not self.ledger.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.ledger, timeout=10)) as conn:
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # the daemon has not migrated it yet
                    return []
                raise

    def health_snapshot(self) -> dict[str, Any] | None:
        """The daemon's last health snapshot, from the ledger."""
        if not self.store.startswith("sqlite:"):
            store = open_store(self.store)
            try:
                value = store.get_progress(HEALTH_KEY)
            finally:
                store.close()
            return json.loads(value) if value else None
        rows = self.query("SELECT value FROM progress WHERE key = ?", HEALTH_KEY)
        return json.loads(rows[0][0]) if rows else None


class DaemonProcess:
    """One ``nextstep run`` subprocess, its log file, and its address once it serves."""

    def __init__(self, workspace: Workspace, process: asyncio.subprocess.Process, log: Path):
        self.workspace = workspace
        self.process = process
        self.log = log
        self.base_url = ""

    @classmethod
    async def start(
        cls, workspace: Workspace, name: str = "daemon", log_format: str = "text"
    ) -> DaemonProcess:
        """Start ``nextstep run`` and wait until it serves."""
        log = workspace.root / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from nextstep.engine.commands.cli import main; main()",
                "run",
                "-c",
                str(workspace.config),
                "--log-level",
                "debug",
                "--log-format",
                log_format,
                stdout=sink,
                stderr=sink,
                cwd=workspace.root,
                env=env,
            )
        daemon = cls(workspace, process, log)
        snapshot = await wait_for(daemon._own_snapshot, f"{name} to serve (log: {log})")
        daemon.base_url = f"http://{snapshot['listen']}"
        return daemon

    async def _own_snapshot(self) -> dict[str, Any] | None:
        if self.process.returncode is not None:
            raise AssertionError(
                f"the daemon exited with {self.process.returncode}:\n"
                + self.log.read_text(errors="replace")
            )
        snapshot = self.workspace.health_snapshot()
        if snapshot and snapshot.get("pid") == self.process.pid and snapshot.get("listen"):
            return snapshot
        return None

    def log_text(self) -> str:
        """Everything the daemon logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def get(self, path: str) -> httpx.Response:
        """GET a path of the daemon's server."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            return await client.get(path)

    async def health(self) -> dict[str, Any]:
        """GET /healthz."""
        answer = await self.get("/healthz")
        data: dict[str, Any] = answer.json()
        return data

    async def metric(self, name: str) -> float | None:
        """One unlabelled metric's value from /metrics."""
        for line in (await self.get("/metrics")).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    async def post_event(self, path: str, body: Any) -> httpx.Response:
        """POST an event with the event token."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            return await client.post(
                path, json=body, headers={"Authorization": f"Bearer {EVENT_TOKEN}"}
            )

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 40) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
