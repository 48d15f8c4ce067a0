"""Retry delays: exponential from the rule's ``backoff``, capped at ``max_backoff``, jittered.

Pure: the random source is passed in. For one random draw the delay never shrinks from one
attempt to the next and never exceeds the cap; the jitter takes up to a quarter off, so
retries of a burst of failures spread out instead of coming back together.
"""

from __future__ import annotations

from typing import Protocol

JITTER = 0.25


class Random(Protocol):
    """What backoff needs of a random source (``random.Random`` has it)."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...


class BackoffPolicy(Protocol):
    """The fields of ``nextstep.engine.rules.rule.RetryPolicy`` backoff reads."""

    @property
    def backoff(self) -> float:
        """Seconds before the first retry."""
        ...

    @property
    def max_backoff(self) -> float:
        """The cap."""
        ...


def raw_backoff(attempt: int, policy: BackoffPolicy) -> float:
    """The delay before retrying after failed attempt ``attempt`` (1 = the first), no jitter:
    ``backoff``, then doubling, at most ``max_backoff``."""
    if attempt < 1:
        return 0.0
    cap = max(0.0, policy.max_backoff)
    # Exponent clamped: 2**1000 is already above any cap and avoids a float overflow.
    return float(min(cap, max(0.0, policy.backoff) * 2.0 ** min(attempt - 1, 1000)))


def compute_backoff(attempt: int, policy: BackoffPolicy, rng: Random) -> float:
    """Seconds to wait before retrying after failed attempt ``attempt``, with jitter."""
    return raw_backoff(attempt, policy) * (1.0 - JITTER * rng.random())
