"""Run the synchronous store from async code, on one dedicated worker thread.

A single thread keeps every ledger call in order and off the event loop; the store's own lock
makes it safe to also call it directly from another thread (a CLI command, a test).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from nextstep.engine.ledger.base import Store

P = ParamSpec("P")
T = TypeVar("T")


class LedgerRunner:
    """``await runner.call(store.method, *args)`` runs the call on the ledger thread.

    ``progress_writes`` holds, per trigger progress key, the write under way for it (a future
    set to whether it committed): emits of this ledger chain their writes of one key on it
    (see :mod:`nextstep.engine.intake.emit`), whichever emit (before or after a reload) made them.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self.pending = 0  # calls made and not yet returned to their caller
        self._running: set[asyncio.Future[Any]] = set()  # calls on the thread now
        self.progress_writes: dict[str, asyncio.Future[bool]] = {}

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the ledger thread and return its result."""
        loop = asyncio.get_running_loop()
        self.pending += 1
        try:
            future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
            self._running.add(future)
            future.add_done_callback(self._running.discard)
            return await future
        finally:
            self.pending -= 1

    async def settled(self) -> None:
        """Return once the calls on the ledger thread now have finished (their callers may
        not have resumed yet). Waits without holding the GIL: a loop that polled ``pending``
        instead would hold it against the very thread it waits for."""
        if self._running:
            await asyncio.wait(set(self._running))

    def close(self, *, close_store: bool = True) -> None:
        """Wait for pending calls, stop the thread and (by default) close the store."""
        self._executor.shutdown(wait=True)
        if close_store:
            self.store.close()
