"""The dispatcher's batching writer: attempt results and requeues reach the ledger in batches.

Results gather for at most ``max_delay`` seconds or until ``max_batch`` of them wait, then one
ledger call writes them all, so a send costs a fraction of a transaction. The delay is real
time on purpose: it only groups writes and never decides when anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from nextstep.engine.clock import Clock
from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.ledger.runner import LedgerRunner

# Runs on the ledger thread right after a batch is recorded (the status tracker's
# ``delivery.timers.after_attempts``: pending acks, fallbacks, send windows); it must not raise.
AfterWrite = Callable[[Store, list[AttemptResult], float], None]


def _write(
    store: Store,
    results: list[AttemptResult],
    requeues: list[tuple[int, float]],
    now: float,
    after: AfterWrite | None = None,
) -> None:
    store.record_attempts(results)
    store.requeue(requeues, now)
    if after is not None and results:
        after(store, results, now)


class BatchWriter:
    """Collects :class:`AttemptResult` values and requeues; :meth:`run` flushes them."""

    def __init__(
        self,
        runner: LedgerRunner,
        clock: Clock,
        *,
        max_batch: int = 500,
        max_delay: float = 0.005,
        on_flushed: Callable[[int, int], None] | None = None,
        after_write: AfterWrite | None = None,
    ) -> None:
        self._runner = runner
        self._after_write = after_write
        self._clock = clock
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._on_flushed = on_flushed
        self._results: list[AttemptResult] = []
        self._requeues: list[tuple[int, float]] = []
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self.flushed = 0  # results written so far

    @property
    def pending(self) -> int:
        """Results and requeues not yet written."""
        return len(self._results) + len(self._requeues)

    def add(self, result: AttemptResult) -> None:
        """Queue one attempt result for the next flush."""
        self._results.append(result)
        self._signal()

    def requeue(self, notification_id: int, due: float) -> None:
        """Queue giving a leased notification back (nothing sent), due at ``due``."""
        self._requeues.append((notification_id, due))
        self._signal()

    def _signal(self) -> None:
        self._has_items.set()
        if self.pending >= self.max_batch:
            self._full.set()

    async def flush(self) -> None:
        """Write everything pending now (one ledger call); on failure it stays pending."""
        async with self._lock:
            results, self._results = self._results, []
            requeues, self._requeues = self._requeues, []
            self._has_items.clear()
            self._full.clear()
            if not results and not requeues:
                return
            call = asyncio.ensure_future(
                self._runner.call(
                    _write,
                    self._runner.store,
                    results,
                    requeues,
                    self._clock.now(),
                    self._after_write,
                )
            )
            try:
                await asyncio.shield(call)
            except asyncio.CancelledError:
                # The ledger thread writes regardless; wait for it so that nothing is lost or
                # written twice, then stop.
                await self._settle(call, results, requeues)
                raise
            except BaseException:
                self._put_back(results, requeues)
                raise
            self.flushed += len(results)
        if self._on_flushed is not None:
            self._on_flushed(len(results), len(requeues))

    async def _settle(
        self,
        call: asyncio.Future[None],
        results: list[AttemptResult],
        requeues: list[tuple[int, float]],
    ) -> None:
        try:
            await call
        except BaseException:
            self._put_back(results, requeues)
            raise
        self.flushed += len(results)

    def _put_back(self, results: list[AttemptResult], requeues: list[tuple[int, float]]) -> None:
        self._results[:0] = results
        self._requeues[:0] = requeues
        self._signal()

    async def run(self) -> None:
        """Flush whenever something is pending, after ``max_delay`` or once a batch is full."""
        while True:
            await self._has_items.wait()
            if self.pending < self.max_batch and self.max_delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_delay)
            await self.flush()
