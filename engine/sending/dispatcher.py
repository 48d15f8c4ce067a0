"""The dispatcher: lease due notifications, send them within each channel's limits, record.

One feeder leases due notifications from the ledger in batches into a backlog per channel
(:class:`sending.lane.Lane`). Each lane's workers, one per request slot (as many as the rate
needs at the measured latency, :mod:`sending.concurrency`, at most ``max_in_flight``), take a
notification each once a rate token is free; the attempt checks the circuit and the
recipient's spacing at the moment it sends, calls ``channel.send``, lets :func:`decide` say
what follows, and hands the result to the :class:`BatchWriter`.

A notification leased is ``sending`` in the ledger, under this dispatcher's owner id and a
lease it renews every third of the lease, until its result is written. Just before its request
is written it is marked (through the writer, group-committed); what a crash leaves marked is in
doubt, what it leaves only leased is due again (``Store.recover``, docs/scaling.md). Leases
stay small: about a quarter of a second of sending per channel.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any

from nextstep.engine.backoff import Random
from nextstep.engine.clock import Clock
from nextstep.engine.ledger.base import Notification
from nextstep.engine.ledger.leases import LEASE, new_worker_id
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.plugins import Channel
from nextstep.engine.sending.attempt import RetryRules
from nextstep.engine.sending.feed import IdFeed
from nextstep.engine.sending.lane import Lane, LaneStatus
from nextstep.engine.sending.ratelimit import ChannelLimits
from nextstep.engine.sending.writer import AfterWrite, BatchWriter

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # idle: look for due work at least this often
DRAIN_TIMEOUT = 30.0  # shutdown: how long requests already sent may take to answer


class Dispatcher:
    """Sends what the ledger has due, through ``channels``, within ``limits``."""

    def __init__(
        self,
        runner: LedgerRunner,
        channels: Mapping[str, Channel],
        policies: Callable[[Notification], RetryRules],
        clock: Clock,
        limits: Mapping[str, ChannelLimits] | None = None,
        *,
        lease_size: int = 500,
        ids: Collection[int] | IdFeed | None = None,
        rng: Random | None = None,
        flush_delay: float = 0.005,
        drain_timeout: float = DRAIN_TIMEOUT,
        after_write: AfterWrite | None = None,
        owner: str | None = None,
        lease: float = LEASE,
    ) -> None:
        self._runner = runner
        self._clock = clock
        self.owner = owner or new_worker_id()
        self.lease = lease
        self.lease_size = lease_size
        self.drain_timeout = drain_timeout
        self._feed: IdFeed | None = None
        self._fixed: list[int] | None = None
        if isinstance(ids, Collection):
            self._fixed = sorted(ids)
        else:
            self._feed = ids
        self._wake = asyncio.Event()
        self._activity = asyncio.Event()
        self._writer = BatchWriter(
            runner,
            clock,
            max_batch=lease_size,
            max_delay=flush_delay,
            on_flushed=self._flushed,
            after_write=after_write,
            owner=self.owner,
        )
        limits = limits or {}
        self._lanes = {
            name: Lane(
                name,
                channel,
                limits.get(name, ChannelLimits()),
                lease_size=lease_size,
                clock=clock,
                writer=self._writer,
                policies=policies,
                rng=rng or random.Random(),
                on_change=self._on_lane_change,
            )
            for name, channel in channels.items()
        }

    def _ids(self) -> Sequence[int] | None:
        """The ids this dispatcher may lease now (None: any)."""
        return self._feed.window() if self._feed is not None else self._fixed

    # -- public ----------------------------------------------------------------------------
    def wake(self) -> None:
        """New work was queued: look for it now rather than at the next poll."""
        self._wake.set()

    def share(self, channel: str, workers: int, *, hold: float = 0.0) -> None:
        """``workers`` workers send on ``channel`` now: this one takes its share of the
        channel's rate (ratelimit.RateLimiter.share); ``hold`` > 0 sends nothing for that
        long first (a worker joining waits until the others have lowered theirs)."""
        lane = self._lanes.get(channel)
        if lane is None:
            return
        lane.limiter.share(lane.limits.rate, workers)
        if hold > 0:
            lane.limiter.pause_until(self._clock.now() + hold)

    def status(self) -> dict[str, LaneStatus]:
        """Per channel: circuit state and reason, requests in flight, leased backlog."""
        return {name: lane.status() for name, lane in self._lanes.items()}

    async def run(self) -> None:
        """Send due notifications until cancelled; on cancellation, finish what was sent and
        give back what was not."""
        await self._serve(self._feed_forever())

    async def run_until_idle(self) -> None:
        """Send everything due now (and what becomes due while doing so at the current time),
        then return once nothing is in flight and every result is written. Waits needed by the
        rate limit run on the clock; retries due later are left for a later call."""
        await self._serve(self._feed_until_idle())

    # -- the loop ---------------------------------------------------------------------------
    async def _serve(self, feeder: Coroutine[Any, Any, None]) -> None:
        for lane in self._lanes.values():
            lane.stopping = False
        feeding = asyncio.create_task(feeder)
        workers = [asyncio.create_task(lane.run()) for lane in self._lanes.values()]
        workers.append(asyncio.create_task(self._writer.run()))
        workers.append(asyncio.create_task(self._renew_leases()))
        try:
            # Shielded so that a cancellation reaches this frame at once and the lanes stop
            # starting sends before anything else runs.
            await asyncio.shield(feeding)
        finally:
            for lane in self._lanes.values():
                lane.stopping = True
            probes = [lane.probing for lane in self._lanes.values() if lane.probing is not None]
            for task in (feeding, *workers, *probes):
                task.cancel()
            await asyncio.gather(feeding, *workers, *probes, return_exceptions=True)
            await self._drain()

    async def _drain(self) -> None:
        """Give back leased work not started, let requests already sent finish, write all."""
        for lane in self._lanes.values():
            lane.give_back_backlog()
        writing = asyncio.create_task(self._writer.run())  # attempts may wait for their mark
        try:
            await self._finish_attempts(self.drain_timeout)
        finally:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
        await self._writer.flush()

    async def _renew_leases(self) -> None:
        """Keep this dispatcher's leases alive while it runs (a third of the lease apart, so
        two renewals can fail before another worker may take them). The period is real time,
        like the writer's delay: it only keeps the lease fresh and never decides a send (a
        test's fake clock then moves only for what it drives)."""
        store = self._runner.store
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._runner.call(
                    store.renew_leases, self.owner, self._clock.now() + self.lease
                )
            except Exception:
                log.exception("renewing the leases of %s failed; retrying", self.owner)

    async def _finish_attempts(self, timeout: float) -> None:
        tasks = {t for lane in self._lanes.values() for t in lane.tasks}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()  # the attempt records itself in doubt: it may have reached the provider
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _lease(self) -> tuple[str, list[str]]:
        """Lease for every lane that wants more. Returns ``("full", [])`` when none wants,
        ``("more", names)`` when the lease was filled (more may be due), else
        ``("exhausted", names)``: nothing more is due now on the channels ``names``."""
        wants = {name: lane.wants() for name, lane in self._lanes.items()}
        names = [name for name, want in wants.items() if want > 0]
        if not names:
            return "full", []
        limit = min(self.lease_size, sum(wants[name] for name in names))
        store = self._runner.store
        now = self._clock.now()
        call = asyncio.ensure_future(
            self._runner.call(
                store.lease_due,
                now,
                limit,
                names,
                self._ids(),
                self.owner,
                now + self.lease,
            )
        )
        try:
            leased = await asyncio.shield(call)
        except asyncio.CancelledError:
            # The ledger thread leases regardless: keep the rows so that they are given back.
            self._push(await call)
            raise
        self._push(leased)
        return ("more" if len(leased) >= limit else "exhausted"), names

    def _push(self, leased: list[Notification]) -> None:
        for notification in leased:
            self._lanes[notification.channel].push(notification)

    def _due_probes(self) -> list[Lane]:
        now = self._clock.now()
        return [
            lane
            for lane in self._lanes.values()
            if lane.probing is None and lane.circuit.probe_due(now)
        ]

    async def _probe_circuits(self) -> None:
        """Probe every circuit due for it and wait for the answers."""
        due = [lane.probe() for lane in self._due_probes()]
        if due and any(await asyncio.gather(*due)):
            self._wake.set()

    def _start_probes(self) -> None:
        """Probe every circuit due for it in the background (a slow probe of one channel must
        not hold up the others); a success wakes the feeder."""
        for lane in self._due_probes():
            lane.probing = asyncio.create_task(lane.probe())
            lane.probing.add_done_callback(functools.partial(self._probed, lane))

    def _probed(self, lane: Lane, task: asyncio.Task[bool]) -> None:
        lane.probing = None
        if not task.cancelled() and task.exception() is None and task.result():
            self._wake.set()

    def _busy(self) -> bool:
        return any(lane.busy for lane in self._lanes.values())

    async def _feed_forever(self) -> None:
        while True:
            self._start_probes()
            state, names = await self._lease()
            if state == "more":
                continue
            await self._idle_wait(await self._next_wake_time(names))

    async def _feed_until_idle(self) -> None:
        feed = self._feed
        while True:
            await self._probe_circuits()
            state, _ = await self._lease()
            if state == "more" or (state == "exhausted" and feed is not None and feed.advance()):
                continue
            if self._busy():
                self._activity.clear()
                await self._activity.wait()
                continue
            await self._writer.flush()
            # A result may have made something due now (a requeue, a retry with no delay).
            state, _ = await self._lease()
            if state == "more" or self._busy():
                continue
            if feed is None or not await self._arrived(feed):
                return

    async def _arrived(self, feed: IdFeed) -> bool:
        """Idle with ids still to come: wait for them, unless a circuit opened meanwhile (the
        caller reports it; what arrives stays queued)."""
        if any(lane.circuit.is_open for lane in self._lanes.values()):
            return False
        return await feed.arrived()

    async def _next_wake_time(self, names: list[str]) -> float:
        """The earliest of: the next poll, the next due notification on ``names``, the next
        circuit probe."""
        wake_at = self._clock.now() + POLL_INTERVAL
        if names:
            store = self._runner.store
            due = await self._runner.call(store.next_due, names, self._ids())
            if due is not None:
                wake_at = min(wake_at, due)
        for lane in self._lanes.values():
            probe_at = lane.circuit.status.next_probe_at
            if lane.circuit.is_open and probe_at is not None and lane.probing is None:
                wake_at = min(wake_at, probe_at)
        return wake_at

    async def _idle_wait(self, until: float) -> None:
        """Wait until ``until`` on the clock, or less if woken."""
        delay = until - self._clock.now()
        if delay <= 0 or self._wake.is_set():
            self._wake.clear()
            return
        sleeper = asyncio.create_task(self._clock.sleep(delay))
        waker = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Not awaited: a stop must not wait here while the lanes keep going.
            sleeper.cancel()
            waker.cancel()
        self._wake.clear()

    # -- callbacks ----------------------------------------------------------------------------
    def _on_lane_change(self, wants_more: bool) -> None:
        self._activity.set()
        if wants_more:
            self._wake.set()

    def _flushed(self, results: int, requeues: int) -> None:
        self._activity.set()
        if requeues:
            self._wake.set()
