"""Delays that double from a first value up to a cap, and the retry delays built on them.

:func:`capped_doubling` is the one curve: retries (here, with jitter), trigger restarts
(runtime.supervisor), circuit probes (sending.circuit) and a trigger's reconnects all use it.
Retry delays start at the rule's ``backoff``, are capped at ``max_backoff`` and jittered. Pure:
the random source is passed in. For one random draw the delay never shrinks from one attempt
to the next and never exceeds the cap; the jitter takes up to a quarter off, so retries of a
burst of failures spread out instead of coming back together.
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


def capped_doubling(attempt: int, first: float, cap: float) -> float:
    """``first`` for attempt 1, doubling with each attempt after it, never above ``cap``; 0
    before the first attempt. A negative ``first`` or ``cap`` counts as 0."""
    if attempt < 1:
        return 0.0
    # Exponent clamped: 2**1000 is past any real cap and keeps the float from overflowing.
    return float(min(max(0.0, cap), max(0.0, first) * 2.0 ** min(attempt - 1, 1000)))


def raw_backoff(attempt: int, policy: BackoffPolicy) -> float:
    """The delay before retrying after failed attempt ``attempt`` (1 = the first), no jitter:
    ``backoff``, then doubling, at most ``max_backoff``."""
    return capped_doubling(attempt, policy.backoff, policy.max_backoff)


def compute_backoff(attempt: int, policy: BackoffPolicy, rng: Random) -> float:
    """Seconds to wait before retrying after failed attempt ``attempt``, with jitter."""
    return raw_backoff(attempt, policy) * (1.0 - JITTER * rng.random())
