"""Every path writes a notification to an opted-out recipient skipped (opted out), and none
reaches the provider: ``nextstep send`` and ``nextstep ingest`` (the triggers' path, emit, is
the one the end-to-end test drives)."""

from __future__ import annotations

from pathlib import Path

from nextstep.engine.clock import SystemClock
from nextstep.engine.commands.ingest import run_ingest
from nextstep.engine.commands.send import send_event
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import OPTED_OUT, OptOut
from nextstep.engine.model import Event, State
from tests.sending.config import write_config
from tests.support.sandbox import running_sandbox

EVENT = {"first_name": "maria", "application_id": 12345, "stage": "docs_required"}


def _opt_out(store_url: str, recipient: str) -> None:
    store = open_store(store_url)
    try:
        store.add_optouts([OptOut(recipient, "whatsapp", 1.0, "cli")])
    finally:
        store.close()


async def test_send_reports_the_skip(tmp_path: Path) -> None:
    async with running_sandbox(acks=False) as sandbox:
        config = write_config(tmp_path, onemsg_url=sandbox.base_url)
        _opt_out(config.store, "34600111222")
        event = Event({**EVENT, "phone": "+34 600 111 222"})
        report = await send_event(config, config.rules["docs"], event, clock=SystemClock())
    assert (report.state, report.reason, report.ok) == ("skipped", OPTED_OUT, True)
    assert report.line() == f"#{report.id} skipped (opted out)"
    assert sandbox.sends() == []


async def test_ingest_counts_the_skips(tmp_path: Path) -> None:
    async with running_sandbox(acks=False) as sandbox:
        config = write_config(tmp_path, onemsg_url=sandbox.base_url)
        _opt_out(config.store, "34600111222")
        export = tmp_path / "export.csv"
        export.write_text(
            "first_name,application_id,stage,phone\n"
            "maria,1,docs_required,+34 600 111 222\n"
            "ana,2,docs_required,+34 600 111 333\n",
            encoding="utf-8",
        )
        summary = await run_ingest(config, config.rules["docs"], export, clock=SystemClock())
    assert (summary.rows, summary.queued, summary.skipped) == (2, 1, 1)
    assert [r.body["phone"] for r in sandbox.sends()] == ["34600111333"]
    store = open_store(config.store)
    try:
        [maria] = store.find(dedupe_key="1:docs_required")
        assert (maria.state, maria.reason) == (State.SKIPPED, OPTED_OUT)
    finally:
        store.close()
