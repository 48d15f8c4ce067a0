"""One channel's side of the dispatcher: its backlog, limits, circuit and attempts.

A lane runs one worker per request slot (long-lived: no task per send); how many follows the
in-flight target of :class:`sending.concurrency.Concurrency` (rate × smoothed latency, at most
``max_in_flight``): workers are added when the target rises and retire after their attempt
when it falls. A worker takes the next leased notification once a rate token is free; the
attempt spends the token, checks the circuit and the recipient's spacing at the instant it
calls ``channel.send``, so the limits hold for the real send times.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nextstep.engine.backoff import Random
from nextstep.engine.clock import Clock
from nextstep.engine.ledger.base import Notification
from nextstep.engine.metrics import (
    CIRCUIT_OPEN,
    EVENT_TO_SEND,
    IN_FLIGHT_TARGET,
    NOTIFICATIONS,
    RETRIES,
    SMOOTHED_LATENCY,
)
from nextstep.engine.model import Message, Outcome, OutcomeKind, State
from nextstep.engine.plugins import Channel
from nextstep.engine.redact import mask_phones_in, redact_outcome
from nextstep.engine.sending.attempt import NO_RETRY, RetryRules, decide, interrupted
from nextstep.engine.sending.circuit import Cause, Circuit, CircuitStatus
from nextstep.engine.sending.concurrency import Concurrency, overloaded
from nextstep.engine.sending.pause import capped, pause_channel
from nextstep.engine.sending.ratelimit import ChannelLimits, RateLimiter, RecipientSpacing
from nextstep.engine.sending.writer import BatchWriter

log = logging.getLogger("nextstep.engine.sending.dispatcher")  # lanes log as the dispatcher

LEASE_AHEAD = 0.25  # seconds of sending at the channel's rate a lane keeps leased
PRUNE_EVERY = 4096  # attempts between two prunings of the spacing table


@dataclass(frozen=True, slots=True)
class LaneStatus:
    """What ``status`` shows of one channel."""

    circuit: CircuitStatus
    in_flight: int
    backlog: int
    paused_until: float | None
    in_flight_target: int = 0  # requests the lane allows in flight now
    latency: float | None = None  # smoothed request latency, seconds (None: none measured)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "circuit": self.circuit.as_dict(),
            "in_flight": self.in_flight,
            "backlog": self.backlog,
            "paused_until": self.paused_until,
            "in_flight_target": self.in_flight_target,
            "latency": self.latency,
        }


class _Attempt:
    """Where one attempt is: ``new`` (nothing sent), ``sending``, or ``done`` (recorded)."""

    __slots__ = ("notification", "phase", "start")

    def __init__(self, notification: Notification, start: float) -> None:
        self.notification = notification
        self.phase = "new"
        self.start = start  # the send starts no earlier (its rate token is back then)


class Lane:
    """Backlog, limits, circuit and running attempts of one channel."""

    def __init__(
        self,
        name: str,
        channel: Channel,
        limits: ChannelLimits,
        *,
        lease_size: int,
        clock: Clock,
        writer: BatchWriter,
        policies: Callable[[Notification], RetryRules],
        rng: Random,
        on_change: Callable[[bool], None],
    ) -> None:
        self.name = name
        self.channel = channel
        self.limits = limits
        self.lease_size = lease_size
        self.circuit = Circuit()
        self.limiter = RateLimiter(limits.rate, clock)
        self.spacing = RecipientSpacing(limits.recipient_spacing)
        self.backlog: deque[Notification] = deque()
        self.tasks: set[asyncio.Task[Any]] = set()  # workers with an attempt under way
        self.concurrency = Concurrency(limits.rate, limits.max_in_flight)
        self._workers: set[asyncio.Task[None]] = set()
        self._no_workers = asyncio.Event()  # set when the last worker has left
        self._running = False  # run() is under way: workers may be added
        self._turn = asyncio.Lock()
        self._has_work = asyncio.Event()
        self._clock = clock
        self._writer = writer
        self._policies = policies
        self._rng = rng
        self._on_change = on_change
        self._circuit_gauge = CIRCUIT_OPEN.labels(name)
        self._circuit_gauge.set(0)
        self._attempts = 0
        self._counters: dict[tuple[str, State], Any] = {}
        self.stopping = False  # set when the dispatcher stops: start nothing new
        self.probing: asyncio.Task[bool] | None = None  # a circuit probe under way
        self._refill_mark = self.target() // 2  # backlog length at which the lane asks for more
        # Read at scrape time: nothing to update on the send path.
        IN_FLIGHT_TARGET.labels(name).set_function(lambda: self.concurrency.target)
        SMOOTHED_LATENCY.labels(name).set_function(lambda: self.concurrency.latency or 0.0)

    # -- leasing ------------------------------------------------------------------------------
    def target(self) -> int:
        """How many leased notifications this lane keeps waiting."""
        return max(1, min(self.lease_size, math.ceil(self.limits.rate * LEASE_AHEAD)))

    def wants(self) -> int:
        """How many to lease now: refill once the backlog is down to half its target."""
        if self.circuit.is_open:
            return 0
        target = self.target()
        return target - len(self.backlog) if len(self.backlog) <= target // 2 else 0

    def push(self, notification: Notification) -> None:
        """Add a leased notification to the backlog (or give it back while the circuit is
        open: a lease under way when it opened must not hold rows ``sending`` meanwhile)."""
        if self.circuit.is_open:
            due = notification.next_attempt_at
            self._writer.requeue(notification.id, self._clock.now() if due is None else due)
            return
        self.backlog.append(notification)
        self._has_work.set()

    def give_back_backlog(self) -> None:
        """Return every leased notification not yet started to the queue, as it was due."""
        now = self._clock.now()
        while self.backlog:
            n = self.backlog.popleft()
            self._writer.requeue(n.id, n.next_attempt_at if n.next_attempt_at is not None else now)

    @property
    def busy(self) -> bool:
        """True while something is leased or being sent."""
        return bool(self.backlog or self.tasks)

    def status(self) -> LaneStatus:
        """Circuit, requests in flight, backlog, rate pause."""
        paused = self.limiter.paused_until
        if paused is not None and paused <= self._clock.now():
            paused = None
        return LaneStatus(
            self.circuit.status,
            len(self.tasks),
            len(self.backlog),
            paused,
            self.concurrency.target,
            self.concurrency.latency,
        )

    # -- sending ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Send with as many workers as the in-flight target until the dispatcher stops the
        lane.

        A worker takes the next notification once a rate token is free and sends it, then takes
        the next: no task per attempt. When this coroutine is cancelled, the idle workers stop
        at once and the busy ones finish their attempt (the dispatcher waits for them).
        """
        self._running = True
        self._staff()
        try:
            # One event, not asyncio.wait over every worker: with thousands of workers coming
            # and going, re-waiting on all of them at each change would cost O(workers) each.
            await self._no_workers.wait()
        finally:
            self._running = False
            idle = {worker for worker in self._workers if worker not in self.tasks}
            for worker in idle:
                worker.cancel()
            if idle:
                await asyncio.wait(idle)

    def _staff(self) -> None:
        """Add workers up to the in-flight target (they retire themselves when it falls)."""
        if not self._running or self.stopping:
            return
        while len(self._workers) < self.concurrency.target:
            worker = asyncio.create_task(self._work(), name=f"lane {self.name} worker")
            self._workers.add(worker)
            self._no_workers.clear()
            worker.add_done_callback(self._left)

    def _left(self, worker: asyncio.Task[None]) -> None:
        self._workers.discard(worker)
        if not self._workers:
            self._no_workers.set()

    def _surplus(self) -> bool:
        """More workers than the target, beyond a margin: the target moves by one or two with
        each answer, and a worker must not be retired and started again for each of them."""
        target = self.concurrency.target
        margin = 0 if target >= self.limits.max_in_flight else max(1, target // 16)
        return len(self._workers) > target + margin

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self.stopping:
            attempt = await self._take()
            if attempt is None:
                return
            self.tasks.add(me)
            try:
                await self._attempt(attempt)
            except asyncio.CancelledError:
                self._cut_off(attempt)
                raise
            except Exception:
                log.exception("attempt #%d failed", attempt.notification.id)
                self._cut_off(attempt)
            finally:
                self.tasks.discard(me)
                self._finished()
            if self._surplus():
                self._left(me)  # the target fell: one slot fewer
                return

    async def _take(self) -> _Attempt | None:
        """The next notification to send once a rate token is free (None: stop). Workers
        line up for their turn, so tokens go out in order; while nobody waits and a token is
        free, a worker takes the next one at once."""
        if (
            self.backlog
            and not self._turn.locked()
            and not self.circuit.is_open
            and self.limiter.delay(self._clock.now()) <= 0
        ):
            return self._pop()
        async with self._turn:
            while not self.stopping:
                if not self.backlog or self.circuit.is_open:
                    self._has_work.clear()
                    await self._has_work.wait()
                    continue
                await self.limiter.ready()
                if not self.backlog or self.circuit.is_open or self.stopping:
                    continue
                return self._pop()
            return None

    def _pop(self) -> _Attempt:
        attempt = _Attempt(self.backlog.popleft(), self.limiter.reserve(self._clock.now()))
        if len(self.backlog) == self._refill_mark:  # just reached it: lease more
            self._on_change(True)
        return attempt

    async def _attempt(self, attempt: _Attempt) -> None:
        n = attempt.notification
        now = self._clock.now()
        if self.circuit.is_open or self.stopping:
            self._give_back(attempt, attempt.notification.next_attempt_at or now)
            return
        slot = self.spacing.claim(n.recipient, now)
        if slot is not None:
            self._give_back(attempt, slot)
            return
        # Marked just before its request is written (issue 15 defect 10): after a crash only
        # marked rows are in doubt. A refused mark means another worker recovered the lease.
        spacing = self.limits.recipient_spacing
        verdict = await self._writer.mark(
            n.id, (n.channel, n.recipient, spacing) if spacing > 0 and n.recipient else None
        )
        if verdict is False:
            self.limiter.unreserve(attempt.start)
            attempt.phase = "done"
            log.warning("#%d: the lease ran out before it was sent; another worker has it", n.id)
            return
        if verdict is not True:  # another worker sent to this recipient within the spacing
            self._give_back(attempt, float(verdict))
            return
        now = self._clock.now()
        if now < attempt.start:  # the mark was quicker than the token's return
            await self._clock.sleep(attempt.start - now)
            now = self._clock.now()
        if self.circuit.is_open or self.stopping:
            self._give_back(attempt, n.next_attempt_at or now)
            return
        self.spacing.sent(n.recipient, now)  # the spacing counts from the real send time
        self.limiter.take(now)
        attempt.phase = "sending"
        if n.attempts == 0:
            EVENT_TO_SEND.observe(max(0.0, now - n.created_at))
        # Provider answers and request latency are counted by the channel, at the boundary.
        outcome = await self._send(n)
        # The slot is free once the result is committed, not at the answer: a crash leaves in
        # doubt only marked rows without a result, so at most one per slot (max_in_flight).
        # The time a slot is held is what Little's law needs, so it is measured to here.
        await self._writer.written(self._settle(attempt, outcome))
        done = self._clock.now()
        if overloaded(outcome):
            self.concurrency.overload(done)
        else:
            self.concurrency.answered(done - now, done)
            self._staff()

    def _give_back(self, attempt: _Attempt, due: float) -> None:
        self.limiter.unreserve(attempt.start)
        self._writer.requeue(attempt.notification.id, due)
        attempt.phase = "done"

    async def _send(self, n: Notification) -> Outcome:
        try:
            return await self.channel.send(Message(n.channel, n.recipient, n.fields))
        except Exception as exc:
            # A channel classifies provider answers itself; an exception is a bug or a failure
            # after the request may have left, so the message is in doubt, never resent.
            log.exception("channel %s failed while sending #%d", self.name, n.id)
            return Outcome(OutcomeKind.IN_DOUBT, reason=f"channel error: {exc!r}")

    def _settle(self, attempt: _Attempt, outcome: Outcome) -> int:
        n = attempt.notification
        now = self._clock.now()
        try:
            policy = self._policies(n)
        except Exception:
            log.exception("no retry policy for rule %s: not retrying #%d", n.rule_id, n.id)
            policy = NO_RETRY
        asked = outcome = redact_outcome(outcome)  # provider texts made safe to store and show
        outcome = capped(outcome, self.limits.max_pause)
        result = decide(n, outcome, policy, now, self._rng)
        ticket = self._writer.add(result)
        attempt.phase = "done"
        if result.state is not State.QUEUED or result.counts:
            self._counter(n.rule_id, result.state).inc()
        if (down := self.circuit.verdict(outcome)) is not None:
            self._open_circuit(down[1], now, down[0])
        elif outcome.pause is not None:
            pause_channel(self.name, self.limiter, asked, self.limits.max_pause, now)
        return ticket

    def _counter(self, rule_id: str, state: State) -> Any:
        """The metric an attempt result of ``rule_id`` counts in (label lookups cached)."""
        key = (rule_id, state)
        counter = self._counters.get(key)
        if counter is None:
            if state is State.QUEUED:
                counter = RETRIES.labels(rule_id)
            else:
                counter = NOTIFICATIONS.labels(rule_id, state.value)
            self._counters[key] = counter
        return counter

    def _cut_off(self, attempt: _Attempt) -> None:
        """An attempt ended without a result: nothing was sent, or the provider may have it."""
        if attempt.phase == "new":  # stopped before it started: nothing was sent
            due = attempt.notification.next_attempt_at
            self._give_back(attempt, self._clock.now() if due is None else due)
        elif attempt.phase == "sending":  # cut off mid-request: the provider may have it
            self._writer.add(interrupted(attempt.notification, self._clock.now()))
            attempt.phase = "done"

    def _finished(self) -> None:
        self._attempts += 1
        if self._attempts % PRUNE_EVERY == 0:
            self.spacing.prune(self._clock.now())
        if not self.busy:  # the dispatcher waits for idle lanes, not for each attempt
            self._on_change(False)

    # -- circuit ------------------------------------------------------------------------------
    def _open_circuit(self, reason: str, now: float, cause: Cause) -> None:
        if not self.circuit.open(reason, now, cause):
            return
        log.error(
            "channel %s stopped: %s; notifications stay queued until a probe succeeds",
            self.name,
            mask_phones_in(reason),
        )
        self._circuit_gauge.set(1)
        self.give_back_backlog()
        self._on_change(False)

    async def probe(self) -> bool:
        """Ask the channel whether its account works again; True closes the circuit."""
        try:
            ok = await self.channel.probe()
        except Exception as exc:
            log.warning("probe of channel %s failed: %r", self.name, exc)
            ok = False
        if not ok:
            self.circuit.probe_failed(self._clock.now())
            return False
        log.warning("channel %s works again: sending resumes", self.name)
        self.circuit.close()
        self._circuit_gauge.set(0)
        # The worker whose turn it is waits for work while the circuit is open; whatever the
        # backlog holds now, it must look again (nothing else would wake it).
        self._has_work.set()
        return True
