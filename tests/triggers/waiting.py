"""Running a trigger as a task in a test (waiting for a state: tests.support.waiting)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nextstep.engine.plugins import Emit, Trigger


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
