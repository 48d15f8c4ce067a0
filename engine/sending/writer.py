"""The dispatcher's batching writer: attempt results and requeues reach the ledger in batches.

Results gather for at most ``max_delay`` seconds or until ``max_batch`` of them wait, then one
ledger call writes them all, so a send costs a fraction of a transaction. The delay is real
time on purpose: it only groups writes and never decides when anything is sent.

Marks ("this row's request is about to be written", :meth:`BatchWriter.mark`) ride the same
calls but never wait for the delay: an attempt waits for its mark to be committed before it
sends, and the marks asked for while one call is under way go together in the next (group
commit), so marking costs a send a round trip, not a transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from nextstep.engine.clock import Clock
from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.ledger.runner import LedgerRunner

# Runs on the ledger thread right after a batch is recorded (the status tracker's
# ``delivery.timers.after_attempts``: pending acks, fallbacks, send windows); it must not raise.
AfterWrite = Callable[[Store, list[AttemptResult], float], None]
# A send slot to claim with a mark across workers: (channel, recipient, spacing).
Slot = tuple[str, str, float]


def _write(
    store: Store,
    results: list[AttemptResult],
    requeues: list[tuple[int, float]],
    now: float,
    after: AfterWrite | None = None,
    marks: Mapping[int, Slot | None] | None = None,
    owner: str | None = None,
) -> dict[int, bool | float]:
    verdicts: dict[int, bool | float] = {}
    if marks:
        slots = [slot for slot in marks.values() if slot is not None]
        refused = store.claim_recipients(slots, now) if slots else {}
        for nid, slot in marks.items():
            if slot is not None and (slot[0], slot[1]) in refused:
                verdicts[nid] = refused[(slot[0], slot[1])]
        wanted = [nid for nid in marks if nid not in verdicts]
        marked = set(store.mark_sending(wanted, now, owner)) if wanted else set()
        verdicts.update((nid, nid in marked) for nid in wanted)
    store.record_attempts(results, owner)
    store.requeue(requeues, now, owner)
    if after is not None and results:
        after(store, results, now)
    return verdicts


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
        owner: str | None = None,
    ) -> None:
        self._runner = runner
        self.owner = owner  # whose leases the writes apply to (None: any)
        self._marks: dict[int, tuple[Slot | None, asyncio.Future[bool | float]]] = {}
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
        self._added = 0  # results added so far: the k-th is written once flushed >= k
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def pending(self) -> int:
        """Results, requeues and marks not yet written."""
        return len(self._results) + len(self._requeues) + len(self._marks)

    async def mark(self, notification_id: int, slot: Slot | None = None) -> bool | float:
        """Mark a leased notification as being sent and wait until the mark is committed.
        True: send it. False: the lease is no longer ours (another worker recovered it): do
        not send. A time: another worker sent to this recipient within the spacing (``slot``
        is claimed across workers): try again from then."""
        entry = self._marks.get(notification_id)
        if entry is None:
            entry = (slot, asyncio.get_running_loop().create_future())
            self._marks[notification_id] = entry
        future = entry[1]
        self._has_items.set()
        self._full.set()  # marks never wait for the batching delay
        return await asyncio.shield(future)

    def add(self, result: AttemptResult) -> int:
        """Queue one attempt result for the next flush; returns its ticket for
        :meth:`written`."""
        self._results.append(result)
        self._added += 1
        self._signal()
        return self._added

    async def written(self, ticket: int) -> None:
        """Wait until the result of ``ticket`` is committed. Results are written in the order
        they were added (a failed write puts them back in front), so it is the ticket-th."""
        if self.flushed >= ticket:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((ticket, future))
        await future

    def _count_written(self, results: int) -> None:
        self.flushed += results
        waiting = []
        for ticket, future in self._waiting:
            if ticket > self.flushed:
                waiting.append((ticket, future))
            elif not future.done():
                future.set_result(None)
        self._waiting = waiting

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
            marks, self._marks = self._marks, {}
            self._has_items.clear()
            self._full.clear()
            if not results and not requeues and not marks:
                return
            call = asyncio.ensure_future(
                self._runner.call(
                    _write,
                    self._runner.store,
                    results,
                    requeues,
                    self._clock.now(),
                    self._after_write,
                    {nid: slot for nid, (slot, _) in marks.items()},
                    self.owner,
                )
            )
            try:
                marked = await asyncio.shield(call)
            except asyncio.CancelledError:
                # The ledger thread writes regardless; wait for it so that nothing is lost or
                # written twice, then stop.
                marked = await self._settle(call, results, requeues, marks)
                _resolve(marks, marked)
                raise
            except BaseException as exc:
                self._put_back(results, requeues)
                _fail(marks, exc)
                raise
            _resolve(marks, marked)
            self._count_written(len(results))
        if self._on_flushed is not None:
            self._on_flushed(len(results), len(requeues))

    async def _settle(
        self,
        call: asyncio.Future[dict[int, bool | float]],
        results: list[AttemptResult],
        requeues: list[tuple[int, float]],
        marks: Marks,
    ) -> dict[int, bool | float]:
        try:
            marked = await call
        except BaseException as exc:
            self._put_back(results, requeues)
            _fail(marks, exc)
            raise
        self._count_written(len(results))
        return marked

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


Marks = dict[int, tuple[Slot | None, asyncio.Future[bool | float]]]


def _resolve(marks: Marks, verdicts: dict[int, bool | float]) -> None:
    for nid, (_, future) in marks.items():
        if not future.done():
            future.set_result(verdicts.get(nid, False))


def _fail(marks: Marks, exc: BaseException) -> None:
    """A failed mark is no mark: the attempt gives its notification back unsent."""
    for _, future in marks.values():
        if not future.done():
            if isinstance(exc, Exception):
                future.set_exception(exc)
            else:
                future.cancel()
