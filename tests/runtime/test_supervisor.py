"""Supervisor: a failing trigger is restarted with backoff; the others keep running."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.engine.clock import FakeClock
from nextstep.engine.runtime.supervisor import Backoff, Supervisor, restart_delay
from tests.support.waiting import until


@given(st.integers(min_value=1, max_value=200), st.floats(0.01, 5), st.floats(5, 120))
def test_restart_delay_monotone_and_capped(failures: int, base: float, cap: float) -> None:
    now = restart_delay(failures, base=base, cap=cap)
    after = restart_delay(failures + 1, base=base, cap=cap)
    assert base <= now <= after <= cap


async def test_failing_task_restarts_with_backoff_while_others_run(clock: FakeClock) -> None:
    attempts = 0
    steady = asyncio.Event()
    healthy = asyncio.Event()

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise RuntimeError(f"boom {attempts}")
        healthy.set()
        await asyncio.Event().wait()

    async def calm() -> None:
        steady.set()
        await asyncio.Event().wait()

    async with asyncio.TaskGroup() as group:
        sup = Supervisor(group, clock, Backoff(base=1.0, cap=10.0))
        sup.start("calm", "http", calm)
        sup.start("flaky", "csv", flaky)
        await until(lambda: clock.sleepers == 1)
        flaky_health = {h.name: h for h in sup.health()}["flaky"]
        assert flaky_health.state == "backoff"
        assert flaky_health.last_error == "RuntimeError: boom 1"
        clock.advance(1.0)  # first restart after base
        await until(lambda: attempts == 2 and clock.sleepers == 1)
        clock.advance(1.0)  # second delay is 2 s: not yet
        await asyncio.sleep(0)
        assert attempts == 2
        clock.advance(1.0)
        await asyncio.wait_for(healthy.wait(), 5)
        await steady.wait()
        states = {h.name: (h.state, h.restarts) for h in sup.health()}
        assert states == {"calm": ("running", 0), "flaky": ("running", 2)}
        await sup.stop_all()
        assert sup.names == []


async def test_start_twice_is_refused(clock: FakeClock) -> None:
    async def idle() -> None:
        await asyncio.Event().wait()

    async with asyncio.TaskGroup() as group:
        sup = Supervisor(group, clock)
        sup.start("a", "http", idle)
        with pytest.raises(ValueError, match="already running"):
            sup.start("a", "http", idle)
        await sup.stop("a")
        await sup.stop("a")  # stopping a stopped task is a no-op
