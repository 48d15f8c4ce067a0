"""The ledger thread: first-served calls (a slot's mark or result) overtake ordinary calls still
waiting, never one under way; each kind keeps its order; nothing queued is lost at close."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner


@pytest.fixture
async def runner() -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store("sqlite:///:memory:"))
    yield r
    r.close()


async def held(runner: LedgerRunner, gate: threading.Event, ran: list[str]) -> asyncio.Task[bool]:
    """A call that occupies the ledger thread until ``gate`` is set (and says so)."""
    started = threading.Event()

    def hold() -> bool:
        started.set()
        ran.append("held")
        return gate.wait(30)

    task = asyncio.ensure_future(runner.call(hold))
    await asyncio.to_thread(started.wait, 30)
    return task


async def test_first_served_calls_overtake_waiting_ones_in_their_own_order(
    runner: LedgerRunner,
) -> None:
    gate, ran = threading.Event(), []
    try:
        holding = await held(runner, gate, ran)
        calls = [
            asyncio.ensure_future(runner.call(ran.append, "lease")),
            asyncio.ensure_future(runner.call_first(ran.append, "mark 1")),
            asyncio.ensure_future(runner.call(ran.append, "next_due")),
            asyncio.ensure_future(runner.call_first(ran.append, "mark 2")),
        ]
        await asyncio.sleep(0)  # every call queued behind the one under way
        gate.set()
        await asyncio.gather(holding, *calls)
    finally:
        gate.set()
    assert ran == ["held", "mark 1", "mark 2", "lease", "next_due"]


async def test_a_call_cancelled_while_waiting_never_runs(runner: LedgerRunner) -> None:
    gate, ran = threading.Event(), []
    try:
        holding = await held(runner, gate, ran)
        dropped = asyncio.ensure_future(runner.call_first(ran.append, "dropped"))
        kept = asyncio.ensure_future(runner.call(ran.append, "kept"))
        await asyncio.sleep(0)
        dropped.cancel()
        gate.set()
        await asyncio.gather(holding, kept)
        with pytest.raises(asyncio.CancelledError):
            await dropped
    finally:
        gate.set()
    assert ran == ["held", "kept"]
    assert runner.pending == 0


async def test_errors_reach_their_caller_and_the_thread_goes_on(runner: LedgerRunner) -> None:
    def fails() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await runner.call_first(fails)
    assert await runner.call(lambda: 42) == 42


async def test_close_runs_every_call_still_queued() -> None:
    runner = LedgerRunner(open_store("sqlite:///:memory:"))
    gate, ran = threading.Event(), []
    holding = await held(runner, gate, ran)
    calls = [asyncio.ensure_future(runner.call(ran.append, str(i))) for i in range(3)]
    calls.append(asyncio.ensure_future(runner.call_first(ran.append, "first")))
    await asyncio.sleep(0)
    threading.Timer(0.05, gate.set).start()  # released while close() already waits
    runner.close()
    assert ran == ["held", "first", "0", "1", "2"]
    await asyncio.gather(holding, *calls)
    with pytest.raises(RuntimeError):
        await runner.call(ran.append, "after close")


async def test_settled_returns_once_the_calls_on_the_thread_have_finished(
    runner: LedgerRunner,
) -> None:
    gate, ran = threading.Event(), []
    try:
        await runner.settled()  # nothing running: at once
        holding = await held(runner, gate, ran)
        settled = asyncio.ensure_future(runner.settled())
        done, _ = await asyncio.wait({settled}, timeout=0.05)
        assert not done and runner.pending == 1
        gate.set()
        await settled
        assert await holding is True
        assert runner.pending == 0
    finally:
        gate.set()
