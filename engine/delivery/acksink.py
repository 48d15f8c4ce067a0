"""Group commit of acks received over HTTP: :class:`AckSink`, the engine's ``AckRecorder``.

A channel that receives acks (the ``ReceivesAcks`` ability) mounts its own route, parses its
provider's payload into :class:`Ack` values and hands them to :meth:`AckSink.record`, which
returns once they are safely in the ledger: the route answers 2xx only then, so the provider
retries anything lost. Calls that arrive while a write is under way are written together in
the next transaction, so many concurrent calls cost one commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from nextstep.engine.clock import Clock
from nextstep.engine.delivery.acks import record_ack_batches
from nextstep.engine.delivery.fallbacks import PolicyContext
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Ack, AckReport


class AckSink:
    """Group commit for ack calls: :meth:`record` waits for the transaction that holds its
    acks; one writer drains whatever calls are waiting into each transaction. ``context`` may
    be a callable, read per batch, so a reload's new rules apply at once."""

    def __init__(
        self,
        runner: LedgerRunner,
        clock: Clock,
        context: PolicyContext | Callable[[], PolicyContext],
    ) -> None:
        self._runner, self._store, self._clock, self._context = runner, runner.store, clock, context
        self._waiting: list[tuple[Sequence[Ack], asyncio.Future[AckReport]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, acks: Sequence[Ack]) -> AckReport:
        """Write ``acks`` (with whatever other calls are waiting); raises StoreError."""
        future: asyncio.Future[AckReport] = asyncio.get_running_loop().create_future()
        self._waiting.append((acks, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            ctx = self._context() if callable(self._context) else self._context
            try:
                reports = await self._runner.call(
                    record_ack_batches, self._store, [a for a, _ in taken], self._clock.now(), ctx
                )
            except Exception as exc:  # noqa: BLE001 - every waiting call gets the failure
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), report in zip(taken, reports, strict=True):
                if not future.done():
                    future.set_result(report)
