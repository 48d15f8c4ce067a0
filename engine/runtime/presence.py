"""A worker's presence in the shared ledger: its row in ``workers`` (heartbeat, what it holds)
and the recovery of work whose owner is gone or whose lease ran out.

Every worker runs this, so nothing waits for a dead worker longer than its lease: a third of
a lease after the lease ran out at the latest, a live worker notices and recovers the rows
(marked ones in doubt, the rest due again) — at once when the dead worker ran on the same host
(its pid is gone). docs/scaling.md, "Leases and takeover".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nextstep.engine.clock import Clock
from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import NextstepError
from nextstep.engine.ledger.leases import LEASE, Recovered, WorkerRecord, gone, this_host
from nextstep.engine.ledger.runner import LedgerRunner

log = logging.getLogger(__name__)

SHARE_SILENCE = 2.0  # leases of silence after which a worker no longer counts for rate shares

Holds = Callable[[], Mapping[str, Any]]
OnRecovered = Callable[[Recovered], Awaitable[None]]


def lease_of(settings: Mapping[str, Any]) -> float:
    """``workers.lease`` of nextstep.yaml (default 30 s); the schema checked its shape."""
    workers = settings.get("workers")
    if isinstance(workers, Mapping) and "lease" in workers:
        return parse_duration(workers["lease"])
    return LEASE


class Presence:
    """This worker's row and the periodic recovery of others' expired work."""

    def __init__(
        self,
        runner: LedgerRunner,
        clock: Clock,
        worker_id: str,
        lease: float,
        holds: Holds,
        on_recovered: OnRecovered,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.id = worker_id
        self.lease = lease
        self.host = this_host()
        self.started_at = clock.now()
        self._holds = holds
        self._on_recovered = on_recovered
        self._on_beat = on_beat
        self.workers: list[WorkerRecord] = []  # as last read, for health

    async def beat(self) -> None:
        """Write this worker's row, read everyone's."""
        store = self.runner.store
        record = WorkerRecord(
            self.id,
            self.host,
            os.getpid(),
            self.started_at,
            self.clock.now(),
            self.lease,
            dict(self._holds()),
        )
        # Off the ledger thread: a heartbeat must not queue behind the send path's writes (a
        # late heartbeat makes this worker look gone to the others).
        await asyncio.to_thread(store.heartbeat, record)
        self.workers = await asyncio.to_thread(store.workers)
        if self._on_beat is not None:
            self._on_beat()

    def live_on(self, channel: str) -> int:
        """How many workers send on ``channel`` (this one counted, at least 1). A worker is
        counted until it stopped or was silent for two leases: counting one too many only
        lowers the shares for a while, one too few would exceed the rate."""
        now = self.clock.now()
        others = sum(
            1
            for w in self.workers
            if w.id != self.id
            and w.stopped_at is None
            and now - w.last_seen <= SHARE_SILENCE * w.lease
            and channel in w.holds.get("channels", ())
        )
        return others + 1

    @property
    def period(self) -> float:
        """Seconds between two heartbeats."""
        return self.lease / 3

    async def recover(self) -> Recovered:
        """Recover the rows of gone workers and of expired leases; report what moved."""
        now = self.clock.now()
        away = gone(self.workers, now, host=self.host, me=self.id)
        done = await asyncio.to_thread(self.runner.store.recover, now, away)
        if done.in_doubt or done.requeued:
            await self._on_recovered(done)
        return done

    async def run(self) -> None:
        """Heartbeat and recovery every third of a lease, until cancelled."""
        while True:
            await self.clock.sleep(self.period)
            try:
                await self.beat()
                await self.recover()
            except NextstepError as exc:
                log.warning("worker heartbeat failed (retrying): %s", exc)

    async def stop(self) -> None:
        """Record a clean stop (what this worker held is given back by then)."""
        try:
            await self.runner.call(self.runner.store.stop_worker, self.id, self.clock.now())
        except NextstepError as exc:
            log.warning("could not record this worker's stop: %s", exc)

    def as_list(self) -> list[dict[str, Any]]:
        """The workers as health shows them (this one first)."""
        now = self.clock.now()
        rows = sorted(self.workers, key=lambda w: (w.id != self.id, -w.last_seen))
        return [w.as_dict(now) for w in rows if w.stopped_at is None or now - w.last_seen < 3600]
