"""Emits that overlap (a trigger hands over its next batch while the last one is written): the
writes of one progress key commit in order, and never after a write of that key that failed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import StoreError
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Enqueued, NewNotification, Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import Emit
from nextstep.engine.rules.config import Config
from tests.sending.config import write_config
from tests.support.waiting import until


class GatedStore:
    """A real in-memory store whose ``enqueue`` can be held at a gate or made to fail, chosen
    by the progress value it is given; it records the values it was called with."""

    def __init__(self) -> None:
        self.store = open_store("sqlite:///:memory:")
        self.gates: dict[str, threading.Event] = {}
        self.failing: set[str] = set()
        self.calls: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def enqueue(
        self, items: Sequence[NewNotification], progress: Sequence[Progress] = ()
    ) -> list[Enqueued]:
        value = progress[0].value if progress else None
        self.calls.append(value)
        if value in self.gates:
            self.gates[value].wait(timeout=10)
        if value in self.failing:
            raise StoreError("ledger 'x': disk I/O error")
        return self.store.enqueue(items, progress)


@pytest.fixture
async def gated() -> AsyncIterator[GatedStore]:
    store = GatedStore()
    yield store
    store.store.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


def _emit(gated: GatedStore, runner: LedgerRunner, config: Config, clock: FakeClock) -> Emit:
    return make_emit(runner, [config.rules["docs"]], clock, "ES")


def _batch(app: int) -> list[Event]:
    return [
        Event(
            {
                "first_name": "ana",
                "application_id": app,
                "stage": "docs_required",
                "phone": "+34 600 111 222",
            }
        )
    ]


async def _parked(turns: int = 5) -> None:
    """Let every ready task run until it waits (rendering is synchronous, then it awaits)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_the_next_batch_is_written_only_after_the_previous_one(
    gated: GatedStore, config: Config, clock: FakeClock
) -> None:
    runner = LedgerRunner(cast(Store, gated))
    emit = _emit(gated, runner, config, clock)
    gated.gates["1"] = release = threading.Event()
    first = asyncio.ensure_future(emit(_batch(1), [Progress("csv:f", "1")]))
    second = asyncio.ensure_future(emit(_batch(2), [Progress("csv:f", "2")]))
    await until(lambda: gated.calls == ["1"])  # the first write is held at its gate
    await _parked()
    assert gated.calls == ["1"]  # the second batch is rendered and waits its turn
    release.set()
    (one,), (two,) = await asyncio.gather(first, second)
    assert gated.calls == ["1", "2"]
    assert (one.results[0].notification_id or 0) < (two.results[0].notification_id or 0)
    assert gated.store.get_progress("csv:f") == "2"
    runner.close(close_store=False)


async def test_a_failed_batch_stops_the_ones_handed_over_after_it(
    gated: GatedStore, config: Config, clock: FakeClock
) -> None:
    runner = LedgerRunner(cast(Store, gated))
    emit = _emit(gated, runner, config, clock)
    gated.failing.add("1")
    first = asyncio.ensure_future(emit(_batch(1), [Progress("csv:f", "1")]))
    second = asyncio.ensure_future(emit(_batch(2), [Progress("csv:f", "2")]))
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(o) for o in outcomes] == [StoreError, StoreError]
    assert "disk I/O error" in str(outcomes[0])
    assert "not written" in str(outcomes[1])
    assert gated.calls == ["1"]  # the second batch never reached the ledger
    assert gated.store.get_progress("csv:f") is None
    assert gated.store.counts() == {}
    # Once the failure has been reported, the source starts again from its progress.
    gated.failing.clear()
    (again,) = await emit(_batch(1), [Progress("csv:f", "1")])
    assert again.results[0].status == "queued"
    assert gated.store.get_progress("csv:f") == "1"
    runner.close(close_store=False)


async def test_other_progress_keys_do_not_wait(
    gated: GatedStore, config: Config, clock: FakeClock
) -> None:
    runner = LedgerRunner(cast(Store, gated))
    emit = _emit(gated, runner, config, clock)
    gated.failing.add("1")
    first = asyncio.ensure_future(emit(_batch(1), [Progress("csv:a", "1")]))
    other = asyncio.ensure_future(emit(_batch(2), [Progress("csv:b", "2")]))
    outcomes = await asyncio.gather(first, other, return_exceptions=True)
    assert isinstance(outcomes[0], StoreError)
    assert not isinstance(outcomes[1], BaseException)
    assert gated.store.get_progress("csv:b") == "2"
    runner.close(close_store=False)
