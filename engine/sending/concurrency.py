"""How many requests a channel keeps awaiting an answer: Little's law from measured latency.

The rate limiter decides when sends start; to hold that pace each send needs a free request
slot, and a channel sending ``rate`` per second whose answers take ``latency`` seconds has
``rate × latency`` requests awaiting an answer on average (Little's law). So the target is
that product, with headroom for jitter, from a smoothed latency (an exponentially weighted
moving average of answered requests, updated with each answer), never above ``ceiling`` (the
channel's ``max_in_flight``) nor below ``floor``.

A fixed number of slots either caps the rate when the provider slows down (100 slots at 300 ms
is 333 msg/s whatever the configured rate) or, set high, lets a struggling provider be buried
in requests. Following the latency avoids both; on a sign of overload (a 429, a timeout, no
answer at all) the allowance is cut multiplicatively, at most once per round trip (a burst of
failures from one round trip is one signal), and grows back additively, a step per round trip,
until Little's law rules again (AIMD, as TCP's congestion window).

Pure: times and latencies are passed in; the lane feeds it and reads :attr:`target`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nextstep.engine.model import Outcome, OutcomeKind

# HTTP statuses that say the provider is overloaded or did not answer in time.
_OVERLOAD_STATUSES = frozenset({408, 429, 503, 504})


@dataclass(frozen=True, slots=True)
class ConcurrencyRules:
    """Knobs of the controller (defaults suit every channel; tests turn them)."""

    headroom: float = 1.5  # target = rate × latency × headroom: room for latency jitter
    smoothing: float = 0.05  # weight of a new latency sample in the moving average
    # Seconds assumed before the first answer: generous, since the rate limiter, not the
    # slots, sets the pace; too few slots would hold the rate down for a whole round trip.
    initial_latency: float = 1.0
    floor: int = 4  # never fewer slots than this (a burst of zero-latency answers)
    decrease: float = 0.5  # the allowance is multiplied by this on overload
    recover: float = 0.1  # per round trip, the allowance grows by this share of the target

    def __post_init__(self) -> None:
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be in (0, 1)")
        if self.headroom < 1 or self.initial_latency <= 0 or self.floor < 1 or self.recover <= 0:
            raise ValueError("headroom >= 1, initial_latency > 0, floor >= 1, recover > 0")


def overloaded(outcome: Outcome) -> bool:
    """True when an answer says the provider is overloaded: a rate limit (a pause, 429), a
    timeout or gateway status, or no answer at all (a timeout, a dropped connection)."""
    if outcome.pause is not None or outcome.http_status in _OVERLOAD_STATUSES:
        return True
    failed = outcome.kind in (OutcomeKind.TRANSIENT, OutcomeKind.IN_DOUBT)
    return failed and outcome.http_status is None


class Concurrency:
    """The in-flight target of one channel sending at ``rate``, at most ``ceiling``."""

    def __init__(self, rate: float, ceiling: int, rules: ConcurrencyRules | None = None) -> None:
        if rate <= 0 or ceiling < 1:
            raise ValueError("rate must be more than zero and ceiling at least 1")
        self.rate = rate
        self.ceiling = ceiling
        self.rules = rules or ConcurrencyRules()
        self._latency = self.rules.initial_latency
        self.samples = 0  # answers measured so far
        self._allowance: float | None = None  # the AIMD cap; None: Little's law alone
        self._cut_at = -math.inf  # when the allowance was last cut
        self._grown_at = 0.0  # when the allowance last grew
        self.target = self._compute()

    @property
    def latency(self) -> float | None:
        """The smoothed latency in seconds (None before the first answer)."""
        return self._latency if self.samples else None

    @property
    def allowance(self) -> float | None:
        """The cap left by overload (None when none is in force)."""
        return self._allowance

    def little(self) -> float:
        """Requests in flight that the rate needs at the smoothed latency, with headroom."""
        return self.rate * self._latency * self.rules.headroom

    def answered(self, latency: float, now: float) -> int:
        """A request was answered after ``latency`` seconds, at ``now``; the new target."""
        latency = max(0.0, latency)
        if self.samples == 0:
            self._latency = latency
        else:
            w = self.rules.smoothing
            self._latency += w * (latency - self._latency)
        self.samples += 1
        if self._allowance is not None:
            self._grow(now)
        self.target = self._compute()
        return self.target

    def overload(self, now: float) -> int:
        """The provider showed overload at ``now``: cut the allowance (once per round trip);
        the new target. The latency of such an answer (a timeout's) is not a sample."""
        if now - self._cut_at >= self._round_trip():
            self._allowance = max(float(self.rules.floor), self.target * self.rules.decrease)
            self._cut_at = now
            self._grown_at = now
            self.target = self._compute()
        return self.target

    def _round_trip(self) -> float:
        return max(self._latency, 1e-3)

    def _grow(self, now: float) -> None:
        assert self._allowance is not None
        elapsed = now - self._grown_at
        if elapsed <= 0:
            return
        step = max(1.0, self.rules.recover * self.little())
        self._allowance += step * elapsed / self._round_trip()
        self._grown_at = now
        if self._allowance >= min(self.little(), self.ceiling):
            self._allowance = None  # recovered: Little's law rules again

    def _compute(self) -> int:
        want = self.little()
        if self._allowance is not None:
            want = min(want, self._allowance)
        return max(min(self.rules.floor, self.ceiling), min(self.ceiling, math.ceil(want)))
