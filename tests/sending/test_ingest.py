"""The Emit triggers are given: every rule sees every event, one ledger write per batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Event, Progress, State
from nextstep.engine.rules.config import Config
from tests.sending.config import write_config


@pytest.fixture
async def runner() -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store("sqlite:///:memory:"))
    yield r
    r.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


def _event(app: int, stage: str = "docs_required", phone: str = "+34 600 111 222") -> Event:
    return Event({"first_name": "maria", "application_id": app, "stage": stage, "phone": phone})


async def test_each_rule_sees_each_event(
    runner: LedgerRunner, clock: FakeClock, config: Config
) -> None:
    woken: list[int] = []
    emit = make_emit(
        runner, list(config.rules.values()), clock, "ES", on_queued=lambda: woken.append(1)
    )
    results = await emit(
        [_event(1), _event(2, stage="approved"), _event(3, phone="12")],
        [Progress("http:key", "abc")],
    )
    by_rule = [{r.rule_id: r for r in result.results} for result in results]
    assert by_rule[0]["docs"].status == "queued" and by_rule[0]["welcome"].status == "queued"
    assert by_rule[1]["docs"].status == "skipped"
    assert "stage" in by_rule[1]["docs"].reason
    assert by_rule[1]["welcome"].status == "queued"
    assert by_rule[2]["docs"].status == "error" and by_rule[2]["docs"].reason.startswith("to:")
    assert woken == [1]

    store = runner.store
    assert store.get_progress("http:key") == "abc"
    first = by_rule[0]["docs"].notification_id
    assert first is not None
    row = store.get(first)
    assert row is not None
    assert (row.recipient, row.state, row.dedupe_key) == (
        "34600111222",
        State.QUEUED,
        "1:docs_required",
    )
    assert row.fields["params"] == ["Maria", "loan application", "upload documents"]
    rule = config.rules["docs"]
    assert store.get_rule_version("docs", rule.version) == rule.definition


async def test_a_second_event_with_the_same_dedupe_key_is_a_duplicate(
    runner: LedgerRunner, clock: FakeClock, config: Config
) -> None:
    emit = make_emit(runner, [config.rules["docs"]], clock, "ES")
    (first,) = await emit([_event(7)], [])
    (again,) = await emit([_event(7)], [])
    queued, duplicate = first.results[0], again.results[0]
    assert queued.status == "queued"
    assert duplicate.status == "duplicate"
    assert duplicate.reason == f"duplicate of #{queued.notification_id}"
    row = runner.store.get(duplicate.notification_id or 0)
    assert row is not None and row.state is State.SKIPPED


async def test_a_batch_with_nothing_to_send_still_commits_its_progress(
    runner: LedgerRunner, clock: FakeClock, config: Config
) -> None:
    woken: list[int] = []
    emit = make_emit(runner, [config.rules["docs"]], clock, "ES", on_queued=lambda: woken.append(1))
    (result,) = await emit([_event(1, stage="approved")], [Progress("csv:f", "9")])
    assert result.results[0].status == "skipped" and woken == []
    assert runner.store.get_progress("csv:f") == "9"
