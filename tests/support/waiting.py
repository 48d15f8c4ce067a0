"""Waiting in a test for something another task does: poll a condition, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

STEP = 0.005  # seconds between two looks


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (checked every few milliseconds, letting other tasks
    run), or fail the test with TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(STEP)
