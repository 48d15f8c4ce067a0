"""Run the synchronous store from async code, on one dedicated worker thread.

A single thread keeps the ledger calls off the event loop, one at a time; the store's own lock
makes it safe to also call it directly from another thread (a CLI command, a test).

Calls run in the order they were made, with one exception: :meth:`LedgerRunner.call_first`
(the dispatcher's marks and results, which hold a request slot until committed) runs before
ordinary calls still waiting, such as a lease of hundreds of rows. Measured with
``bench/send_throughput.py``: a slot waited ~29 ms for its mark and ~28 ms for its result
behind leases, ~18 ms and ~17 ms served first. A caller that needs one call to follow
another awaits the first, which every caller here does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from nextstep.engine.ledger.base import Store

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Callable[[], Any], concurrent.futures.Future[Any]]


class LedgerRunner:
    """``await runner.call(store.method, *args)`` runs the call on the ledger thread.

    ``progress_writes`` holds, per trigger progress key, the write under way for it (a future
    set to whether it committed): emits of this ledger chain their writes of one key on it
    (see :mod:`nextstep.engine.intake.emit`), whichever emit (before or after a reload) made them.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        # The executor's one thread runs one queued call per submission, the first-served
        # ones before the others (its own queue cannot be reordered).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._first: deque[_Work] = deque()
        self._others: deque[_Work] = deque()
        self.pending = 0  # calls made and not yet returned to their caller
        self._running: set[asyncio.Future[Any]] = set()  # calls on the thread now
        self.progress_writes: dict[str, asyncio.Future[bool]] = {}

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the ledger thread and return its result."""
        result: T = await self._submit(self._others, functools.partial(fn, *args, **kwargs))
        return result

    async def call_first(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Like :meth:`call`, but run before the ordinary calls still waiting (a write that
        something waits on to go on sending); first-served calls keep their own order."""
        result: T = await self._submit(self._first, functools.partial(fn, *args, **kwargs))
        return result

    async def _submit(self, queue: deque[_Work], work: Callable[[], Any]) -> Any:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        queue.append((work, done))  # before the submission: the thread may take it at once
        try:
            self._executor.submit(self._run_next)
        except RuntimeError:  # shut down: nothing will run it
            queue.remove((work, done))
            raise
        future = asyncio.wrap_future(done)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        self.pending += 1
        try:
            return await future
        finally:
            self.pending -= 1

    def _run_next(self) -> None:
        """On the ledger thread: run the next call (one was queued for each submission)."""
        work, done = self._first.popleft() if self._first else self._others.popleft()
        if not done.set_running_or_notify_cancel():  # its caller was cancelled first
            return
        try:
            result = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, like an executor
            done.set_exception(exc)
        else:
            done.set_result(result)

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
