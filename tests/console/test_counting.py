"""The overview's counts: windows of whole bars, closed hours kept and counted again when they
are FRESH_FOR old (a state change of an old notification shows by then), the current hour
counted at every request; on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger.base import Store
from nextstep.engine.ledger.reads import ConsoleReads, Counts
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.runtime.console.counting import (
    HOUR,
    HourlyCounts,
    Period,
    runs,
    split,
    tallies,
    window_start,
)
from tests.support.notifications import new_notification

NOW = 1_780_003_000.0  # 30 min 40 s into an hour (494445 * 3600 = 1_780_002_000)
THIS_HOUR = int(NOW // HOUR)


@pytest.fixture
def runner(store: Store) -> Iterator[LedgerRunner]:
    running = LedgerRunner(store)
    yield running
    running.close(close_store=False)


def _hourly(runner: LedgerRunner, clock: FakeClock) -> HourlyCounts:
    assert isinstance(runner.store, ConsoleReads)
    return HourlyCounts(runner, runner.store, clock, fresh_for=60.0)


def _total(periods: dict[int, Period], state: str = "queued") -> int:
    return sum(n for p in periods.values() for (_, s), n in p.states.items() if s == state)


def test_windows_are_whole_bars_of_the_clock() -> None:
    assert window_start("hour", NOW) == (NOW // 300 - 11) * 300
    assert window_start("day", NOW) == (THIS_HOUR - 23) * HOUR
    assert window_start("week", NOW) % (6 * HOUR) == 0
    assert NOW - window_start("week", NOW) < 7 * 86400
    assert runs([5, 3, 4, 9, 1]) == [(1, 1), (3, 5), (9, 9)]


def test_tallies_put_periods_in_bars_and_keep_asked_rules() -> None:
    counts = Counts(
        states=(("a", 10, "read", 2), ("a", 11, "failed", 1), ("x", 13, "queued", 4)),
        skipped=(("a", 11, "duplicate of #…", 3), ("a", 99, "late", 1)),
    )
    periods = split(counts, 10, 13, 0.0)
    assert periods[13].skipped == {("a", "late"): 1}  # beyond the span: the nearest period
    found = {t.rule_id: t for t in tallies(["a", "b"], periods, 10.0, 100.0, 20.0, 2)}
    assert set(found) == {"a", "b", "x"}
    assert found["a"].states == {"read": 2, "failed": 1} and found["a"].trend == (3, 0)
    assert found["a"].skipped == {"duplicate of #…": 3, "late": 1}
    assert found["x"].trend == (0, 4) and found["b"].total == 0


async def test_closed_hours_are_kept_until_fresh_for_and_the_current_one_is_live(
    store: Store, runner: LedgerRunner
) -> None:
    clock = FakeClock(NOW)
    old = store.enqueue(
        [new_notification(created_at=NOW - 5 * HOUR, rule_id="a")]
        + [new_notification(created_at=NOW - 2 * HOUR + i, rule_id="a") for i in range(3)]
    )
    hourly = _hourly(runner, clock)
    first = THIS_HOUR - 23
    found = await hourly.since(["a"], first)
    assert set(found) == set(range(first, THIS_HOUR + 1)) and _total(found) == 4
    assert hourly.counted == 23  # every closed hour, once

    store.enqueue([new_notification(created_at=NOW + 1, rule_id="a")])  # the current hour
    store.cancel(old[0].id, NOW + 1)  # an old notification changes state
    clock.advance(1)
    found = await hourly.since(["a"], first)
    # the new one counted (the current hour), the old one's change not yet (its hour is kept)
    assert _total(found) == 5 and _total(found, "cancelled") == 0
    assert hourly.counted == 23  # nothing counted again but the current hour

    clock.advance(60)
    found = await hourly.since(["a"], first)
    assert _total(found) == 4 and _total(found, "cancelled") == 1  # within fresh_for
    assert hourly.counted == 46


async def test_requests_count_stale_hours_ahead_at_their_pace(
    store: Store, runner: LedgerRunner
) -> None:
    clock = FakeClock(NOW)
    store.enqueue([new_notification(created_at=NOW - 3 * HOUR, rule_id="a")])
    hourly = _hourly(runner, clock)
    first = THIS_HOUR - 23
    await hourly.since(["a"], first)
    counted = [hourly.counted]
    for _ in range(40):  # the overview refreshing itself every 2 s
        clock.advance(2)
        await hourly.since(["a"], first)
        counted.append(hourly.counted)
    steps = [b - a for a, b in zip(counted, counted[1:], strict=False)]
    assert max(steps) <= 2  # a few hours per request, never the whole window again
    assert all(clock.now() - p.at < 60 for p in hourly.hours.values())


async def test_another_rule_set_is_counted_again(store: Store, runner: LedgerRunner) -> None:
    clock = FakeClock(NOW)
    store.enqueue([new_notification(created_at=NOW - 3 * HOUR, rule_id="b")])
    hourly = _hourly(runner, clock)
    assert _total(await hourly.since(["a"], THIS_HOUR - 5)) == 0  # b: no version, not asked
    assert _total(await hourly.since(["a", "b"], THIS_HOUR - 5)) == 1
    assert hourly.counted == 10


async def test_a_closed_hour_is_counted_again_once_it_is_over(
    store: Store, runner: LedgerRunner
) -> None:
    clock = FakeClock(NOW)
    hourly = _hourly(runner, clock)
    await hourly.since(["a"], THIS_HOUR - 1)
    store.enqueue([new_notification(created_at=NOW + 10, rule_id="a")])
    clock.advance(HOUR)  # the hour it was created in is over
    found = await hourly.since(["a"], THIS_HOUR - 1)
    assert _total(found) == 1 and THIS_HOUR in hourly.hours
    store.enqueue([new_notification(created_at=NOW + HOUR + 5, rule_id="a")])
    assert _total(await hourly.since(["a"], THIS_HOUR - 1)) == 2
