"""Retention (issue 13, item 4) on both backends: only terminal notifications go, with their
history, in batches; acks that matched and acks for unknown ids after their own periods; the
pruned-rows metric; the daemon's loop on a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError
from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.ledger.retention import DAY, Retention, prune_once, run_retention
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import State
from nextstep.engine.rules.config import load_config
from tests.support.notifications import T0, new_notification
from tests.support.waiting import until


@pytest.fixture
def runner(store: Store) -> Iterator[LedgerRunner]:
    r = LedgerRunner(store)
    yield r
    r.close(close_store=False)


def pruned(table: str) -> float:
    return REGISTRY.get_sample_value("nextstep_pruned_rows_total", {"table": table}) or 0.0


def rows(store: Store, sql: str) -> int:
    with store.transaction() as tx:
        return int(tx.connection.execute(sql).fetchone()[0])  # type: ignore[attr-defined]


def enqueue(store: Store, *keys: str) -> list[int]:
    found = store.enqueue([new_notification(f"3460000{k}", dedupe_key=k) for k in keys])
    return [e.id for e in found]


def finish(store: Store, ids: list[int], state: State) -> None:
    leased = store.lease_due(T0, 100, ids=ids)
    assert {n.id for n in leased} == set(ids)
    store.record_attempts([AttemptResult(i, T0, state, {"kind": "test"}) for i in ids])


def test_only_terminal_notifications_go_with_their_history(store: Store) -> None:
    cancelled, queued, failed, in_doubt, sent = enqueue(store, "1", "2", "3", "4", "5")
    (duplicate,) = enqueue(store, "2")  # a skipped duplicate of the queued one
    assert store.cancel(cancelled, T0)
    finish(store, [failed], State.FAILED)  # its fallback not decided yet: not settled
    finish(store, [in_doubt], State.IN_DOUBT)
    finish(store, [sent], State.SENT)
    before = pruned("notifications")
    gone = asyncio.run(_prune(store, T0 + 91 * DAY))
    assert gone["notifications"] == 3
    assert pruned("notifications") - before == 3
    for nid in (cancelled, duplicate, sent):
        assert store.get(nid) is None
        assert store.history(nid) == []
    for nid in (queued, failed, in_doubt):
        assert store.get(nid) is not None
        assert store.history(nid)


def test_rows_younger_than_the_retention_stay(store: Store) -> None:
    (nid,) = enqueue(store, "1")
    assert store.cancel(nid, T0)
    assert asyncio.run(_prune(store, T0 + 89 * DAY))["notifications"] == 0
    assert store.get(nid) is not None
    kept = Retention(notifications=30 * DAY)
    assert asyncio.run(_prune(store, T0 + 31 * DAY, kept))["notifications"] == 1


def test_pruning_goes_in_batches_of_its_own_transactions(store: Store) -> None:
    ids = enqueue(store, *[str(k) for k in range(25)])
    for nid in ids:
        assert store.cancel(nid, T0)
    cut = T0 + 91 * DAY
    prune = store.prune  # type: ignore[attr-defined]
    assert [prune("notifications", cut, 10) for _ in range(4)] == [10, 10, 5, 0]
    assert rows(store, "SELECT count(*) FROM history") == 0


def test_a_referenced_original_goes_after_what_points_at_it(store: Store) -> None:
    (original,) = enqueue(store, "1")
    (duplicate,) = enqueue(store, "1")
    assert store.cancel(original, T0)
    cut = T0 + 91 * DAY
    first = asyncio.run(_prune(store, cut))
    assert first["notifications"] == 1 and store.get(duplicate) is None
    assert store.get(original) is not None  # the duplicate pointed at it this round
    assert asyncio.run(_prune(store, cut))["notifications"] == 1
    assert store.get(original) is None


def test_acks_and_unknown_acks_have_their_own_periods(store: Store) -> None:
    with store.transaction() as tx:
        tx.keep_acks([(f"m{i}", "delivered", {"id": f"m{i}"}) for i in range(5)], T0)
        tx.connection.execute(  # type: ignore[attr-defined]
            "UPDATE acks SET applied = 1 WHERE provider_id IN ('m0', 'm1')"
        )
    unknown, matched = pruned("unknown_acks"), pruned("acks")
    after_two_days = asyncio.run(_prune(store, T0 + 2 * DAY))
    assert after_two_days["unknown_acks"] == 3 and after_two_days["acks"] == 0
    assert rows(store, "SELECT count(*) FROM acks") == 2
    assert asyncio.run(_prune(store, T0 + 8 * DAY))["acks"] == 2
    assert rows(store, "SELECT count(*) FROM acks") == 0
    assert (pruned("unknown_acks") - unknown, pruned("acks") - matched) == (3, 2)


def test_the_daemon_loop_prunes_every_period_on_its_clock(runner: LedgerRunner) -> None:
    store = runner.store
    (nid,) = enqueue(store, "1")
    assert store.cancel(nid, T0)
    clock = FakeClock(T0)
    retention = Retention(notifications=DAY, every=3600)

    async def scenario() -> None:
        task = asyncio.create_task(run_retention(runner, clock, retention))
        try:
            await until(lambda: clock.sleepers == 1)  # first round done: too young
            assert store.get(nid) is not None
            clock.advance(DAY + 1)
            await until(lambda: clock.sleepers == 1 and store.get(nid) is None)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_retention_reads_the_config_with_defaults() -> None:
    assert Retention.from_settings({}) == Retention()
    found = Retention.from_settings({"retention": {"notifications": "30d", "unknown_acks": "2h"}})
    assert (found.notifications, found.acks, found.unknown_acks) == (30 * DAY, 7 * DAY, 7200.0)


async def _prune(store: Store, now: float, retention: Retention | None = None) -> dict[str, int]:
    runner = LedgerRunner(store)
    try:
        return await prune_once(runner, now, retention or Retention())
    finally:
        runner.close(close_store=False)


def test_a_bad_retention_is_a_located_config_problem(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    config = tmp_path / "nextstep.yaml"
    config.write_text("store: sqlite:///l.db\nrules: rules/\nretention:\n  notifications: soon\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    shown = str(caught.value)
    assert "retention.notifications" in shown and "not a duration" in shown
