"""``nextstep send RULE --event FILE|-``: one event through the whole pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nextstep.engine.clock import SystemClock
from nextstep.engine.commands.cli import main
from nextstep.engine.commands.send import send_event
from nextstep.engine.ledger import open_store
from nextstep.engine.model import Event, State
from tests.sending.config import write_config
from tests.support.sandbox import running_sandbox

EVENT = {"first_name": "maria", "application_id": 12345, "stage": "docs_required"}


async def test_an_event_is_queued_sent_and_reported(tmp_path: Path) -> None:
    async with running_sandbox(acks=False) as sandbox:
        config = write_config(tmp_path, onemsg_url=sandbox.base_url)
        event = Event({**EVENT, "phone": "+34 600 111 222"})
        report = await send_event(config, config.rules["docs"], event, clock=SystemClock())
        again = await send_event(config, config.rules["docs"], event, clock=SystemClock())
    assert (report.state, report.attempts, report.ok) == ("sent", 1, True)
    assert report.provider_id is not None and report.provider_id.startswith("wamid.")
    assert [r.body["phone"] for r in sandbox.sends()] == ["34600111222"]
    assert (again.state, again.reason) == ("skipped", f"duplicate of #{report.id}")
    store = open_store(config.store)
    try:
        row = store.get(report.id or 0)
        assert row is not None and row.state is State.SENT
    finally:
        store.close()


async def test_a_failure_for_good_is_reported_and_not_ok(tmp_path: Path) -> None:
    async with running_sandbox(acks=False) as sandbox:
        config = write_config(tmp_path, onemsg_url=sandbox.base_url)
        event = Event({**EVENT, "phone": "+34 600 000 001"})  # 131026 every time
        report = await send_event(config, config.rules["docs"], event, clock=SystemClock())
    assert (report.state, report.ok) == ("failed", False)
    assert "131026" in report.reason or "undeliverable" in report.reason.lower()


def _cli(tmp_path: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["send", "-c", str(tmp_path / "nextstep.yaml"), *args], input=stdin
    )
    return result.exit_code, result.output


def test_no_wait_queues_and_prints_json(tmp_path: Path) -> None:
    write_config(tmp_path)
    event = json.dumps({**EVENT, "phone": "+34 600 111 222"})
    code, out = _cli(tmp_path, "docs", "--event", "-", "--no-wait", "--json", stdin=event)
    assert code == 0, out
    doc = json.loads(out)
    assert (doc["rule"], doc["state"], doc["attempts"]) == ("docs", "queued", 0)


def test_an_event_the_rule_skips_is_not_an_error(tmp_path: Path) -> None:
    write_config(tmp_path)
    (tmp_path / "event.json").write_text(json.dumps({**EVENT, "stage": "approved"}))
    code, out = _cli(tmp_path, "docs", "--event", str(tmp_path / "event.json"))
    assert code == 0, out
    assert out.startswith("skipped (")


def test_an_event_that_cannot_render_exits_1(tmp_path: Path) -> None:
    write_config(tmp_path)
    code, out = _cli(tmp_path, "docs", "--event", "-", stdin=json.dumps({**EVENT, "phone": "12"}))
    assert code == 1
    assert out.startswith("error (to:")


def test_an_unknown_rule_is_a_usage_error(tmp_path: Path) -> None:
    write_config(tmp_path)
    code, out = _cli(tmp_path, "dosc", "--event", "-", stdin="{}")
    assert code == 2
    assert "docs" in out
