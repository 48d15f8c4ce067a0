"""``nextstep ingest FILE.csv --rule RULE``: summary, re-runs, sending, and a killed process."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextstep.engine.clock import SystemClock
from nextstep.engine.commands.cli import main
from nextstep.engine.commands.ingest import run_ingest
from nextstep.engine.model import State
from nextstep.engine.rules.config import load_config
from tests.support.ledgers import notifications_in
from tests.support.sandbox import running_sandbox
from tests.support.waiting import until
from tests.triggers.pipeline import rule, write_config

HEADER = "first_name,application_id,stage,due_date,phone\n"
ROWS = (
    "maria,1,docs_required,June 20,+34 600 111 222\n"
    "ana,2,approved,June 21,+34 600 111 223\n"
    "bo,3,docs_required,June 22,bad\n"
)


def cli(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ingest", "-c", str(folder / "nextstep.yaml"), *args])
    return result.exit_code, result.output


def test_no_wait_prints_the_summary_and_a_rerun_does_nothing(tmp_path: Path) -> None:
    write_config(tmp_path, rule("docs", '{csv: {path: "inbox/*.csv"}}'))
    (tmp_path / "export.csv").write_text(HEADER + ROWS)
    code, out = cli(tmp_path, str(tmp_path / "export.csv"), "--rule", "docs", "--no-wait")
    assert code == 1  # a row could not be used
    lines = [line.split() for line in out.splitlines()]
    assert ["queued", "1"] in lines and ["skipped", "by", "condition", "1"] in lines
    assert ["duplicates", "0"] in lines and ["errors", "1"] in lines
    assert "export.csv.errors.csv" in out
    code, out = cli(tmp_path, str(tmp_path / "export.csv"), "--rule", "docs", "--no-wait")
    assert code == 0 and "already ingested for rule docs" in out


def test_the_collector_is_as_before_after_an_in_process_ingest(tmp_path: Path) -> None:
    write_config(tmp_path, rule("docs", '{csv: {path: "inbox/*.csv"}}'))
    (tmp_path / "export.csv").write_text(HEADER + ROWS)
    before = gc.get_threshold(), gc.get_freeze_count()
    code, _ = cli(tmp_path, str(tmp_path / "export.csv"), "--rule", "docs", "--no-wait")
    assert code == 1  # the bad row; the run went through
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_file_for_a_rule_of_another_trigger_and_an_unknown_rule(tmp_path: Path) -> None:
    write_config(tmp_path, rule("hook", "{http: {path: /events/x}}"))
    (tmp_path / "export.csv").write_text(HEADER + ROWS.splitlines()[0] + "\n")
    code, out = cli(tmp_path, str(tmp_path / "export.csv"), "--rule", "hook", "--no-wait")
    assert code == 0 and "queued                        1" in out
    code, out = cli(tmp_path, str(tmp_path / "export.csv"), "--rule", "nope", "--no-wait")
    assert code == 2 and "no rule 'nope'" in out


async def test_waits_until_each_notification_is_accepted_or_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ROWS.replace("bad", "+34 600 000 001")  # the sandbox's undeliverable number
    async with running_sandbox(acks=False) as sandbox:
        config = write_config(
            tmp_path,
            rule("docs", '{csv: {path: "x/*.csv"}}'),
            onemsg_url=sandbox.base_url,
            token=sandbox.token,
        )
        (tmp_path / "export.csv").write_text(HEADER + rows)
        summary = await run_ingest(
            config, config.rules["docs"], tmp_path / "export.csv", clock=SystemClock()
        )
    out = capsys.readouterr().out
    assert (summary.queued, summary.skipped, summary.errors) == (2, 1, 0)
    assert "sending 2 notifications" in out and "failed 1, sent 1" in out
    assert sorted(r.body["phone"] for r in sandbox.sends()) == ["34600000001", "34600111222"]


@pytest.mark.slow
def test_a_killed_ingest_resumes_and_queues_every_row_once(tmp_path: Path) -> None:
    write_config(tmp_path, rule("docs", '{csv: {path: "inbox/*.csv", batch: 100}}'))
    total = 20_000
    with (tmp_path / "big.csv").open("w") as f:
        f.write(HEADER)
        for i in range(total):
            f.write(f"p{i},{i},docs_required,June 20,+34 6{i:08d}\n")
    command = [
        str(Path(sys.executable).parent / "nextstep"),
        "ingest",
        str(tmp_path / "big.csv"),
        "--rule",
        "docs",
        "--no-wait",
        "-c",
        str(tmp_path / "nextstep.yaml"),
    ]
    env = {**os.environ, "COLUMNS": "120"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        committed = wait_for_committed_rows(tmp_path / "ledger.db", at_least=500)
        assert first.poll() is None, "the ingest finished before it could be killed"
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=30)
        first.stdout.close()  # type: ignore[union-attr]
        first.stderr.close()  # type: ignore[union-attr]
    assert first.returncode == -signal.SIGKILL and committed < total
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed after row" in second.stdout
    found = notifications_in(tmp_path / "ledger.db", limit=total + 10)
    assert len(found) == len({n.event["application_id"] for n in found}) == total


def wait_for_committed_rows(
    ledger: Path, at_least: int, timeout: float = 60.0, pattern: str = "csv:rule:docs:%"
) -> int:
    """Poll the ledger (read-only) until the file's committed progress reaches ``at_least``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ledger.exists():
            try:
                with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
                    row = db.execute(
                        "SELECT value FROM progress WHERE key LIKE ?", (pattern,)
                    ).fetchone()
            except sqlite3.OperationalError:  # not migrated yet
                row = None
            if row is not None and json.loads(row[0])["row"] >= at_least:
                return int(json.loads(row[0])["row"])
        time.sleep(0.005)
    raise AssertionError(f"fewer than {at_least} rows committed after {timeout}s")


async def test_sending_starts_before_the_file_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first notifications are sent while later batches are still being queued, and every
    row is still sent exactly once."""
    total = 3000
    async with running_sandbox(acks=False) as sandbox:
        write_config(tmp_path, rule("docs", '{csv: {path: "x/*.csv", batch: 50}}'))
        (tmp_path / "nextstep.yaml").write_text(
            "store: sqlite:///ledger.db\nrules: rules/\ndefault_country: ES\nchannels:\n"
            f'  whatsapp: {{type: 1msg, base_url: "{sandbox.base_url}", instance_id: i1, '
            f"token: {sandbox.token}, rate: 100000/s}}\n"
        )
        config = load_config(tmp_path / "nextstep.yaml")
        with (tmp_path / "export.csv").open("w") as f:
            f.write(HEADER)
            # Numbers ending in 77: no failure script of the sandbox matches them.
            f.writelines(f"p{i},{i},docs_required,June 20,+34 6{i:06d}77\n" for i in range(total))
        summary = await run_ingest(
            config, config.rules["docs"], tmp_path / "export.csv", clock=SystemClock()
        )
    assert summary.queued == total and f"sent {total:,}" in capsys.readouterr().out
    assert len(sandbox.sends()) == total
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        (first_sent,) = db.execute("SELECT MIN(at) FROM history WHERE kind = 'attempt'").fetchone()
        (last_queued,) = db.execute("SELECT MAX(created_at) FROM notifications").fetchone()
    assert first_sent < last_queued


@pytest.mark.slow
async def test_an_ingest_killed_while_sending_resumes_and_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    """SIGKILL while the file is read and its first notifications are sent, then again: every
    row is queued once and no recipient gets a second request (what the killed run had leased
    is left to the lease recovery, not sent by the second run)."""
    total = 8000
    async with running_sandbox(acks=False, latency=0.05, record_limit=2 * total) as sandbox:
        write_config(tmp_path, rule("docs", '{csv: {path: "inbox/*.csv", batch: 50}}'))
        (tmp_path / "nextstep.yaml").write_text(
            "store: sqlite:///ledger.db\nrules: rules/\ndefault_country: ES\nchannels:\n"
            f'  whatsapp: {{type: 1msg, base_url: "{sandbox.base_url}", instance_id: i1, '
            f"token: {sandbox.token}, rate: 2000/s}}\n"
        )
        with (tmp_path / "big.csv").open("w") as f:
            f.write(HEADER)
            f.writelines(f"p{i},{i},docs_required,June 20,+34 6{i:06d}77\n" for i in range(total))
        command = [
            str(Path(sys.executable).parent / "nextstep"),
            "ingest",
            str(tmp_path / "big.csv"),
        ]
        command += ["--rule", "docs", "-c", str(tmp_path / "nextstep.yaml")]
        env = {**os.environ, "COLUMNS": "120"}
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            await until(lambda: len(sandbox.sends()) >= 50, timeout=60)
            assert first.poll() is None, "the ingest finished before it could be killed"
            first.send_signal(signal.SIGKILL)
        finally:
            await asyncio.to_thread(first.wait, 30)
            first.stdout.close()  # type: ignore[union-attr]
            first.stderr.close()  # type: ignore[union-attr]
        before = len(sandbox.sends())
        second = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, env=env, timeout=240
        )
        assert second.returncode == 0, second.stdout + second.stderr
        # A request cut off by the kill may have reached the sandbox without its body.
        phones = [r.body["phone"] for r in sandbox.sends() if r.body is not None]
    assert "resumed after row" in second.stdout or "already ingested" in second.stdout
    assert len(phones) == len(set(phones)) and len(phones) >= before
    found = notifications_in(tmp_path / "ledger.db", limit=total + 10)
    assert len(found) == len({n.event["application_id"] for n in found}) == total
    sent = [n for n in found if n.state == State.SENT]
    assert len(sent) <= len(phones)  # each sent notification reached the sandbox once
