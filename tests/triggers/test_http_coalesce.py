"""The event endpoint's group commit: requests waiting while a write is under way are written
together in the next one (adapters/triggers/http/coalesce.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from nextstep.adapters.triggers.http.coalesce import Coalescer
from nextstep.engine.errors import StoreError
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import EventResult, RuleResult
from tests.support.waiting import until


class GatedEmit:
    """An emit that records each call's events and, while ``gate`` is clear, holds the call
    (a ledger write under way)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_on = fail_on  # the call (1-based) that raises StoreError

    async def __call__(
        self, events: Sequence[Event], progress: Sequence[Progress]
    ) -> list[EventResult]:
        assert not progress
        names = [str(e.data["n"]) for e in events]
        self.calls.append(names)
        await self.gate.wait()
        if self.fail_on == len(self.calls):
            raise StoreError("ledger unavailable")
        return [EventResult((RuleResult("r", "queued", int(n)),)) for n in names]


def events(*numbers: int) -> list[Event]:
    return [Event({"n": n}, {"kind": "http"}) for n in numbers]


def ids(results: list[EventResult]) -> list[int | None]:
    return [r.results[0].notification_id for r in results]


async def test_a_lone_request_is_written_at_once_in_its_own_call() -> None:
    emit, coalescer = GatedEmit(), Coalescer()
    assert ids(await coalescer.emit(emit, events(1, 2))) == [1, 2]
    assert emit.calls == [["1", "2"]]


async def test_requests_arriving_during_a_write_go_together_in_the_next() -> None:
    emit, coalescer = GatedEmit(), Coalescer()
    emit.gate.clear()
    first = asyncio.create_task(coalescer.emit(emit, events(1)))
    await until(lambda: len(emit.calls) == 1)
    later = [asyncio.create_task(coalescer.emit(emit, events(n, n + 100))) for n in (2, 3, 4)]
    await asyncio.sleep(0)  # let them queue behind the write under way
    emit.gate.set()
    assert ids(await first) == [1]
    assert [ids(await task) for task in later] == [[2, 102], [3, 103], [4, 104]]
    assert emit.calls == [["1"], ["2", "102", "3", "103", "4", "104"]]
    assert coalescer.calls == 2


async def test_a_joined_call_holds_at_most_max_events_and_never_splits_a_request() -> None:
    emit, coalescer = GatedEmit(), Coalescer(max_events=3)
    emit.gate.clear()
    first = asyncio.create_task(coalescer.emit(emit, events(1)))
    await until(lambda: len(emit.calls) == 1)
    later = [
        asyncio.create_task(coalescer.emit(emit, events(*batch)))
        for batch in ([2, 3], [4, 5], [6], [7, 8, 9, 10])
    ]
    await asyncio.sleep(0)
    emit.gate.set()
    await asyncio.gather(first, *later)
    assert emit.calls == [["1"], ["2", "3"], ["4", "5", "6"], ["7", "8", "9", "10"]]


async def test_a_failed_write_fails_every_request_in_it_and_the_next_goes_on() -> None:
    emit, coalescer = GatedEmit(fail_on=2), Coalescer()
    emit.gate.clear()
    first = asyncio.create_task(coalescer.emit(emit, events(1)))
    await until(lambda: len(emit.calls) == 1)
    joined = [asyncio.create_task(coalescer.emit(emit, events(n))) for n in (2, 3)]
    await asyncio.sleep(0)
    emit.gate.set()
    assert ids(await first) == [1]
    for task in joined:
        with pytest.raises(StoreError):
            await task
    assert ids(await coalescer.emit(emit, events(4))) == [4]


async def test_requests_for_different_emits_are_not_mixed() -> None:
    one, other, coalescer = GatedEmit(), GatedEmit(), Coalescer()
    one.gate.clear()
    first = asyncio.create_task(coalescer.emit(one, events(1)))
    await until(lambda: len(one.calls) == 1)
    tasks = [
        asyncio.create_task(coalescer.emit(emit, events(n)))
        for emit, n in ((one, 2), (other, 3), (one, 4))
    ]
    await asyncio.sleep(0)
    one.gate.set()
    await asyncio.gather(first, *tasks)
    assert one.calls == [["1"], ["2"], ["4"]]  # order kept: 4 waits for 3's call
    assert other.calls == [["3"]]


async def test_a_request_that_goes_away_still_has_its_events_written() -> None:
    emit, coalescer = GatedEmit(), Coalescer()
    emit.gate.clear()
    first = asyncio.create_task(coalescer.emit(emit, events(1)))
    await until(lambda: len(emit.calls) == 1)
    gone = asyncio.create_task(coalescer.emit(emit, events(2)))
    stays = asyncio.create_task(coalescer.emit(emit, events(3)))
    await asyncio.sleep(0)
    gone.cancel()  # the client disconnected
    emit.gate.set()
    await asyncio.gather(first, stays)
    assert gone.cancelled()
    assert emit.calls == [["1"], ["2", "3"]]
