"""Group commit for the event endpoint: the events of requests that arrive while one batch is
being written go to the ledger together, in the next single ``emit``.

One ``emit`` per request costs a ledger transaction per request. On a host where the daemon
gets a third of a core, 200 requests a second spent more time committing than the CPU share
allowed, a backlog built up and event-to-send grew to seconds (bench/reload_latency.py
``--load 2``). Joining the requests that wait while a write is under way keeps one write in
flight whatever the arrival rate: a quiet endpoint still writes each request at once (a batch
of one), a busy one writes more per transaction instead of queueing transactions.

Requests with an ``Idempotency-Key`` do not come here: each claims its key in its own
transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from nextstep.engine.model import Event
from nextstep.engine.plugins import Emit, EventResult

log = logging.getLogger(__name__)

MAX_EVENTS = 500  # events per joined emit (one request's events are never split)


@dataclass(slots=True)
class _Waiting:
    emit: Emit
    events: Sequence[Event]
    future: asyncio.Future[list[EventResult]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Coalescer:
    """Emits the events of concurrent callers in as few ``emit`` calls as possible: at most one
    call is under way; whatever arrives meanwhile goes in the next one."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max(1, max_events)
        self.calls = 0  # emit calls made (tests, diagnostics)
        self._queue: deque[_Waiting] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def emit(self, emit: Emit, events: Sequence[Event]) -> list[EventResult]:
        """``emit(events, [])`` joined with the other callers' events; this caller's results,
        or the exception the joined call raised."""
        waiting = _Waiting(emit, events)
        self._queue.append(waiting)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="http events group commit")
        # Shielded: a caller that goes away (a client disconnecting) does not cancel a write
        # that also carries the others' events; its own events are written all the same.
        return await asyncio.shield(waiting.future)

    def _next_batch(self) -> list[_Waiting]:
        """The longest run at the queue's head with one emit and at most ``max_events``."""
        first = self._queue.popleft()
        batch, count = [first], len(first.events)
        while self._queue:
            head = self._queue[0]
            if head.emit is not first.emit or count + len(head.events) > self.max_events:
                break
            batch.append(self._queue.popleft())
            count += len(head.events)
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                events = [event for waiting in batch for event in waiting.events]
                self.calls += 1
                try:
                    results = await batch[0].emit(events, [])
                except BaseException as exc:
                    for waiting in batch:
                        _fail(waiting.future, exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                start = 0
                for waiting in batch:
                    end = start + len(waiting.events)
                    if not waiting.future.done():
                        waiting.future.set_result(results[start:end])
                    start = end
        finally:
            self._writer = None
            for waiting in self._queue:  # only left when the drain itself was cancelled
                _fail(waiting.future, asyncio.CancelledError())
            self._queue.clear()


def _fail(future: asyncio.Future[list[EventResult]], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
        # Retrieved here: a caller that went away meanwhile must not leave a "never
        # retrieved" complaint behind (the callers still there get it from their await).
        future.exception()
