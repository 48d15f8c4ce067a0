"""Sending limits of a channel: throughput, requests in flight, spacing per recipient.

Time is always passed in (or read from the injected clock), so tests move it by hand.
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nextstep.engine.clock import Clock
from nextstep.engine.durations import parse_duration, parse_rate
from nextstep.engine.plugins import channel_class

# A spent token comes back this much after a full window, so float rounding of clock values
# can never let a window hold one send too many.
_EPSILON = 1e-6
# The part of a channel's rate that workers sharing it use together (the rest absorbs the
# differences between their paths to the provider: docs/scaling.md).
SHARED_HEADROOM = 0.9
# How long before a spent token is back a sender may hold it (at most a quarter of the window):
# the time its ledger mark takes on a busy host (RateLimiter).
MARK_LEAD = 0.1
DEFAULT_RATE = 80.0  # Meta's default throughput per business number
DEFAULT_MAX_IN_FLIGHT = 4000  # a ceiling: the target follows rate x latency (concurrency.py)
DEFAULT_MAX_PAUSE = 300.0  # seconds: the cap on a provider's Retry-After
# The spacing of limits made by hand (tests); a configured channel's default is its type's
# ``traits.recipient_spacing`` (see :func:`channel_limits`).
PAIR_SPACING = 6.0


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """How fast one channel may send."""

    rate: float = DEFAULT_RATE  # sends per second
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # ceiling of requests awaiting an answer
    recipient_spacing: float = PAIR_SPACING  # seconds between two sends to one recipient
    max_pause: float = (
        DEFAULT_MAX_PAUSE  # the longest a provider's Retry-After may pause the channel
    )

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], *, recipient_spacing: float = PAIR_SPACING
    ) -> ChannelLimits:
        """Read ``rate`` (``80/s``), ``max_in_flight``, ``recipient_spacing`` (``6s``) and
        ``max_pause`` (``5m``: the cap on a provider's ``Retry-After``) from
        a channel's settings; absent keys keep their defaults (``recipient_spacing``: the
        channel type's, from its traits). Raises ValueError."""
        rate = parse_rate(settings["rate"]) if "rate" in settings else DEFAULT_RATE
        in_flight = settings.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)
        if isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 1:
            raise ValueError(f"max_in_flight must be a whole number >= 1, not {in_flight!r}")
        spacing = settings.get("recipient_spacing", recipient_spacing)
        max_pause = parse_duration(settings.get("max_pause", DEFAULT_MAX_PAUSE))
        if max_pause <= 0:
            raise ValueError(f"max_pause must be more than zero, not {settings['max_pause']!r}")
        return cls(rate, in_flight, parse_duration(spacing), max_pause)


def channel_limits(kind: str, settings: Mapping[str, Any]) -> ChannelLimits:
    """The limits of a channel of type ``kind``: its settings, else its type's traits."""
    traits = channel_class(kind).traits
    return ChannelLimits.from_settings(settings, recipient_spacing=traits.recipient_spacing)


class RateLimiter:
    """A bucket of ``floor(rate)`` tokens (at least 1) where a token spent at ``t`` returns
    at ``t + window``, the window being 1 s (``1 / rate`` below 1/s): no window of 1 s ever
    sees more sends start than ``rate`` allows (a fractional rate above 1/s rounds down:
    ``450/m`` sends 7 a second, since 7.5 a second would need 8 in some second).

    (A bucket refilled continuously would let a full bucket plus a window's refill through
    after a quiet spell, up to twice the rate within one second.) ``pause_until`` stops every
    send until a time, for a provider's ``Retry-After``.

    A sender waits with :meth:`ready`, holds a token with :meth:`reserve`, and spends it with
    :meth:`take` at the very moment it sends (or gives it back with :meth:`unreserve`): a
    reserved token counts as spent, so what was promised can never exceed the bucket.

    Between holding a token and sending, the sender marks its row in the ledger (a group
    commit: milliseconds to tens of them on a busy host). Were a token held only once it is
    back, that time would be added to every token's second and the channel would run at
    ``rate / (1 + mark time)`` (946 msg/s at ``rate: 1000/s``, bench/latency_sweep.py). So a
    token may be held up to ``lead`` seconds before it is back: :meth:`reserve` then says when
    it is back, and the sender starts its send no earlier (each token's sends stay a window
    apart, so no window holds more than ``capacity``).
    """

    def __init__(self, rate: float, clock: Clock) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than zero")
        self.capacity = max(1, math.floor(rate))
        # Never a window under 1 s: at 7.5/s, 7 tokens returning every 0.93 s would let 8
        # sends start within one second (issue 15.12). A fractional rate above 1 rounds down.
        self.window = max(1.0, self.capacity / rate)
        self._clock = clock
        self._spent: deque[float] = deque()
        # Every send start of the last max(1 s, window), whatever the window: when a share
        # changes the window, the new one counts the sends already in it (share).
        self._sent: deque[float] = deque()
        self._paused_until = -math.inf
        self._reserved = 0
        self._lock = asyncio.Lock()

    @property
    def lead(self) -> float:
        """How long before a spent token is back it may be held (see the class)."""
        return min(MARK_LEAD, self.window / 4)

    def share(self, rate: float, workers: int) -> None:
        """Send at most this worker's share of ``rate`` when ``workers`` share the channel
        (docs/scaling.md, "Rates across workers"): ``SHARED_HEADROOM × rate / workers`` per
        second, paced in tenths of a second rather than in one burst per second. Bursts of
        several workers, each delayed differently on its way, would meet in one second at the
        provider; paced sends with the headroom keep every 1-second window there within
        ``rate``. A share under one send per second is one send per ``1 / share`` seconds."""
        before = (self.capacity, self.window)
        if workers <= 1:
            self.capacity = max(1, math.floor(rate))
            self.window = max(1.0, self.capacity / rate)  # as alone from the start
        else:
            each = rate * SHARED_HEADROOM / workers
            self.capacity = max(1, math.floor(each / 10))
            self.window = self.capacity / each
        if (self.capacity, self.window) == before:  # every heartbeat says so: nothing new
            return
        # The log under the new window: the sends of its length so far. Going from a tenth of
        # a second back to a whole second (workers left), the last second's sends count, or
        # up to a whole bucket more would start within it. Tokens taken over by a held send
        # may count twice until it starts: stricter for a moment, never looser.
        horizon = self._clock.now() - self.window - _EPSILON
        self._spent = deque(t for t in self._sent if t > horizon)

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until a token is free (0 when one is free now)."""
        spent = self._spent
        horizon = now - self.window - _EPSILON
        while spent and spent[0] <= horizon:
            spent.popleft()
        wait = self._paused_until - now
        over = len(spent) + self._reserved - self.capacity
        if over >= 0:
            # Every token is spent or promised: wait until enough spent ones are back for one
            # to be free, the oldest in a full log; after a share lowered the bucket, the
            # log holds more than it and ``over`` more must go first (with all of them
            # promised, wait for a promise to be spent or given back).
            back = spent[over] if over < len(spent) else now
            wait = max(wait, back + self.window + _EPSILON - self.lead - now)
        second = self._second_back(now)
        if second is not None:
            wait = max(wait, second - self.lead - now)
        return max(0.0, wait)

    def _second_back(self, now: float) -> float | None:
        """In a share paced in windows under a second: when the last second is back under
        what the share allows in one (None: it is). Paced evenly that never binds; it does
        right after the share fell, when the last second still holds what the whole bucket
        sent (a burst of 7 at 7.5/s, then 1 per 0.3 s, would make 8 in one second)."""
        if self.window >= 1.0:
            return None
        allowed = self.capacity * math.ceil(1.0 / self.window - 1e-9)
        sent = self._sent
        first = bisect_right(sent, now - 1.0 - _EPSILON)  # the sends of the last second
        over = len(sent) - first + self._reserved - allowed
        if over < 0:
            return None
        return (sent[first + over] if first + over < len(sent) else now) + 1.0 + _EPSILON

    def reserve(self, now: float | None = None) -> float:
        """Hold a token for a send about to start (call right after :meth:`ready`); the
        time from which the send may start (-inf: at once). A token not back yet (within
        :attr:`lead`) is the oldest spent one, taken out of the window's log."""
        at = self._clock.now() if now is None else now
        self.delay(at)  # forget the tokens back by now
        start = -math.inf
        spent = self._spent
        over = len(spent) + self._reserved - self.capacity
        if spent and over >= 0:
            # The token is the one back when the log is under the bucket again: the send
            # starts then; the sends before it are back by that time too (out of the log).
            for _ in range(min(over, len(spent) - 1)):
                spent.popleft()
            start = spent.popleft() + self.window + _EPSILON
        second = self._second_back(at)
        if second is not None:
            start = max(start, second)
        self._reserved += 1
        return start

    def take(self, now: float) -> None:
        """Spend a held token: the send starts at ``now`` (not before :meth:`reserve` said)."""
        self._reserved = max(0, self._reserved - 1)
        self._spent.append(now)
        sent = self._sent
        sent.append(now)
        horizon = now - max(1.0, self.window) - _EPSILON
        while sent[0] <= horizon:
            sent.popleft()

    def unreserve(self, start: float = -math.inf) -> None:
        """Give a held token back unspent (the send did not happen); ``start`` is what
        :meth:`reserve` said: a token not back yet goes back into the log where it was."""
        self._reserved = max(0, self._reserved - 1)
        if start > -math.inf:
            insort(self._spent, start - self.window - _EPSILON)

    def pause_until(self, until: float) -> None:
        """Send nothing before ``until`` (a 429's ``Retry-After``)."""
        self._paused_until = max(self._paused_until, until)

    @property
    def paused_until(self) -> float | None:
        """When an active pause ends (None when there never was one)."""
        return None if self._paused_until == -math.inf else self._paused_until

    async def ready(self) -> None:
        """Return once a token is free; waiters are served in order."""
        async with self._lock:
            while (wait := self.delay(self._clock.now())) > 0:
                await self._clock.sleep(wait)


class RecipientSpacing:
    """At least ``spacing`` seconds between two sends to one recipient (Meta's pair limit).

    A message that must wait is given the next free slot for its recipient, so several
    waiting for one person come back one per slot instead of all at once. An empty recipient
    (a webhook, a CRM task: a channel without recipients) is nobody, never one person: its
    sends never share a slot.
    """

    def __init__(self, spacing: float) -> None:
        self.spacing = spacing
        self._last: dict[str, float] = {}
        self._booked: dict[str, float] = {}

    def claim(self, key: str, now: float) -> float | None:
        """None: the message to ``key`` may go now (its send is recorded at ``now``).
        Otherwise the time from which to try again."""
        if self.spacing <= 0 or not key:
            return None
        last = self._last.get(key)
        if last is None or now >= last + self.spacing:
            self._last[key] = now
            return None
        slot = last + self.spacing
        booked = self._booked.get(key)
        if booked is not None and booked + self.spacing > slot:
            slot = booked + self.spacing
        self._booked[key] = slot
        return slot

    def sent(self, key: str, at: float) -> None:
        """Record the real send time of a message :meth:`claim` let go a moment earlier."""
        if self.spacing > 0 and key:
            self._last[key] = max(at, self._last.get(key, at))

    def prune(self, now: float) -> None:
        """Forget recipients whose spacing and bookings are over (bounds memory)."""
        horizon = now - self.spacing
        self._last = {k: t for k, t in self._last.items() if t > horizon}
        self._booked = {k: t for k, t in self._booked.items() if t > now}

    def __len__(self) -> int:
        return len(self._last)
