"""Waiting for a running trigger to reach a state, and running one as a task in a test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from nextstep.engine.plugins import Emit, Trigger


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (checked every few milliseconds), or fail the test."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(trigger: Trigger, emit: Emit) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``trigger`` for the duration of the block; re-raise what it raised."""
    task = asyncio.create_task(trigger.run(emit))
    try:
        yield task
    finally:
        if task.done():
            task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
