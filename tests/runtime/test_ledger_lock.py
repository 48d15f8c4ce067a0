"""One daemon per SQLite ledger (issue 15 defect 1): a second ``nextstep run`` on the same
ledger refuses to start, with a clear message and exit code 3, and the first daemon's work in
flight stays intact (nothing turned in doubt)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.server import serving
from nextstep.engine.runtime.ledgerlock import EXIT_BUSY, LedgerBusy, exclusive_ledger
from tests.runtime.harness import DaemonProcess, Workspace, rule_yaml, wait_for

pytestmark = pytest.mark.slow


def test_the_lock_is_exclusive_and_names_the_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with exclusive_ledger(url) as lock:
        assert lock == tmp_path / "ledger.db.lock"
        with pytest.raises(LedgerBusy, match=f"pid {os.getpid()}"), exclusive_ledger(url):
            pass
    with exclusive_ledger(url):  # released at the end of the block
        pass
    with exclusive_ledger("sqlite:///:memory:") as none, exclusive_ledger("postgresql://x/y"):
        assert none is None


async def test_a_second_daemon_on_the_same_ledger_refuses_and_harms_nothing(
    tmp_path: Path,
) -> None:
    # Slow answers keep requests in flight while the second daemon starts.
    async with serving(SandboxConfig(latency=0.5, ack_delay=0.01)) as sandbox:
        workspace = Workspace(tmp_path, sandbox.base_url)
        workspace.write_config()
        workspace.write_rule("a.yaml", rule_yaml("lock", "http: {path: /events/lock}", "l"))
        first = await DaemonProcess.start(workspace)
        try:
            events = [{"phone": f"+346{i:06d}42", "key": f"k{i}", "name": "N"} for i in range(60)]
            answer = await first.post_event("/events/lock", events)
            assert answer.status_code == 202, answer.text

            async def in_flight() -> bool:
                rows = workspace.query("SELECT count(*) FROM notifications WHERE state = 'sending'")
                return bool(rows and rows[0][0] > 0)

            await wait_for(in_flight, "requests in flight")
            second = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from nextstep.engine.commands.cli import main; main()",
                "run",
                "-c",
                str(workspace.config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=workspace.root,
            )
            output, _ = await asyncio.wait_for(second.communicate(), 30)
            assert second.returncode == EXIT_BUSY, output.decode()
            text = output.decode()
            assert f"another nextstep run (pid {first.process.pid}) is using the ledger" in text
            assert "in doubt" not in text

            async def all_sent() -> bool:
                rows = workspace.query("SELECT state, count(*) FROM notifications GROUP BY 1")
                states = dict(rows)
                return sum(states.values()) == 60 and set(states) <= {"sent", "delivered", "read"}

            await wait_for(all_sent, "the first daemon to send everything", timeout=60)
            assert workspace.query("SELECT count(*) FROM notifications WHERE state = 'in_doubt'")[
                0
            ] == (0,)
            assert await first.stop() == 0
        finally:
            await first.kill()
