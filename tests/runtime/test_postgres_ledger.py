"""The daemon and the commands on a PostgreSQL ledger: an HTTP event sent through the sandbox,
its delivered ack back through the webhook, then ``status``, ``send`` and ``ingest``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.server import Running, serving
from nextstep.engine.commands.cli import main
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Notification
from nextstep.engine.model import State
from tests.runtime.harness import DaemonProcess, Workspace, rule_yaml, wait_for
from tests.support.ledgers import PostgresLedgers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
async def sandbox() -> AsyncIterator[Running]:
    async with serving(SandboxConfig(ack_delay=0.01)) as running:
        yield running


@pytest.fixture
def workspace(tmp_path: Path, sandbox: Running, postgres_session: PostgresLedgers) -> Workspace:
    space = Workspace(tmp_path, sandbox.base_url, store=postgres_session.fresh())
    space.write_config()
    space.write_rule("a.yaml", rule_yaml("greet", "http: {path: /events/pg}", "pg"))
    space.write_rule("b.yaml", rule_yaml("listed", 'csv: {path: "inbox/*.csv"}', "csv"))
    return space


async def _cli(workspace: Workspace, *args: str, stdin: str | None = None) -> Result:
    command = [args[0], "-c", str(workspace.config), *args[1:]]
    return await asyncio.to_thread(CliRunner().invoke, main, command, input=stdin)


def _one(workspace: Workspace, dedupe_key: str) -> Notification | None:
    store = open_store(workspace.store)
    try:
        found = store.find(dedupe_key=dedupe_key)
    finally:
        store.close()
    return found[0] if len(found) == 1 else None


async def test_the_daemon_and_the_commands_on_postgresql(workspace: Workspace) -> None:
    daemon = await DaemonProcess.start(workspace)
    try:
        event = {"phone": "+34600111142", "key": "k1", "name": "Ana"}
        answer = await daemon.post_event("/events/pg", event)
        assert answer.status_code == 202, answer.text

        async def acked() -> Notification | None:
            row = _one(workspace, "k1")
            return row if row and row.state in (State.DELIVERED, State.READ) else None

        row = await wait_for(acked, "the delivered ack in the PostgreSQL ledger")
        assert row.provider_id is not None and row.provider_id.startswith("wamid.")
        status = await _cli(workspace, "status", "--json")
        assert status.exit_code == 0, status.output
        report = json.loads(status.output)
        assert report["daemon"]["status"] == "ok"
        assert report["counts"]["greet"]["total"] == 1
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()

    sent = await _cli(
        workspace,
        "send",
        "greet",
        "--event",
        "-",
        "--json",
        stdin=json.dumps({**event, "key": "k2"}),
    )
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.output)["state"] == "sent"

    (workspace.root / "export.csv").write_text(
        "phone,key,name\n+34600111143,c1,Bo\n+34600111144,c2,Cy\n", encoding="utf-8"
    )
    ingested = await _cli(
        workspace, "ingest", str(workspace.root / "export.csv"), "--rule", "listed"
    )
    assert ingested.exit_code == 0, ingested.output
    for key in ("c1", "c2"):
        row = _one(workspace, key)
        assert row is not None and row.state in (State.SENT, State.DELIVERED, State.READ)
