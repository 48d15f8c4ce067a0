"""tuned_gc: the collector is tuned inside the block and exactly as before after it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from nextstep.engine.runtime.gctune import GEN0_THRESHOLD, tuned_gc


@pytest.fixture(autouse=True)
def untouched_collector() -> Iterator[None]:
    """Each test starts from an unfrozen heap and leaves the collector as it found it."""
    thresholds = gc.get_threshold()
    assert gc.get_freeze_count() == 0, "an earlier test left the heap frozen"
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_block_runs_tuned_and_everything_is_back_after_it() -> None:
    before = gc.get_threshold()
    kept = [object() for _ in range(3)]  # alive on entry: frozen
    with tuned_gc():
        assert gc.get_threshold() == (GEN0_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert len(kept) == 3


def test_an_error_in_the_block_restores_too() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), tuned_gc(gen0=1234):
        assert gc.get_threshold()[0] == 1234
        raise RuntimeError("boom")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_nested_blocks_leave_the_freeze_to_the_outer_one() -> None:
    before = gc.get_threshold()
    with tuned_gc(gen0=1000):
        with tuned_gc(gen0=2000):
            assert gc.get_threshold()[0] == 2000
        assert gc.get_threshold()[0] == 1000 and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_heap_frozen_by_the_host_stays_frozen() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    with tuned_gc():
        pass
    assert gc.get_freeze_count() >= frozen > 0
