"""Pure policy decisions: expiry, retries, which fallback step runs, what a fallback sees.

Nothing here reads the clock, the ledger or the network: callers pass the notification's
fields and ``now``. :mod:`delivery.fallbacks` and :mod:`delivery.timers` apply them to the ledger.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nextstep.engine.delivery.statemachine import reached
from nextstep.engine.model import DELIVERY_ORDER, State
from nextstep.engine.rules.sendwindow import next_open


class _Window(Protocol):
    """What a send window offers (``nextstep.engine.rules.rule.SendWindow``)."""

    @property
    def days(self) -> frozenset[int]: ...

    @property
    def start(self) -> datetime.time: ...

    @property
    def end(self) -> datetime.time: ...


class _Step(Protocol):
    """What a fallback step offers these decisions (``nextstep.engine.rules.rule.FallbackStep``)."""

    @property
    def on(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a notification did not reach what its rule expected; ``failure`` in fallbacks."""

    status: str  # failed | expired
    reason: str = ""
    code: int | None = None
    attempts: int = 0
    failure_class: str | None = None  # OutcomeKind value (recipient, template…) when failed

    def scope(self) -> dict[str, Any]:
        """The ``failure`` variable a fallback's templates see."""
        return {
            "status": self.status,
            "reason": self.reason,
            "code": self.code,
            "attempts": self.attempts,
            "class": self.failure_class,
        }


def expiry_reason(
    state: State,
    *,
    expect: str,
    deadline: float | None,
    valid_until: float | None,
    now: float,
) -> str | None:
    """Why a notification is ``expired`` at ``now``, or None while it is not.

    A queued one expires when ``valid_for`` has passed before it could be sent; a sent one
    expires when its ``within`` deadline passes before it reached ``expect``. A notification
    being sent right now (``sending``) is left to the dispatcher.
    """
    if state is State.QUEUED:
        if valid_until is not None and valid_until <= now:
            return "not sent before valid_for ran out"
        return None
    overdue = deadline is not None and deadline <= now
    if state in DELIVERY_ORDER and overdue and not reached(state, expect):
        return f"not {expect} within the rule's deadline (last status: {state.value})"
    return None


class _Retry(Protocol):
    """What a retry decision reads of ``nextstep.engine.rules.rule.RetryPolicy``."""

    @property
    def attempts(self) -> int: ...

    @property
    def on(self) -> frozenset[str]: ...


def retries(failure_class: str, attempts: int, retry: _Retry) -> bool:
    """True when a notification that failed with ``failure_class`` after ``attempts`` send
    attempts is sent again: the rule retries that class and has attempts left. A failed ack
    meaning "this recipient cannot be reached" is a recipient failure, which no default
    policy retries."""
    return failure_class in retry.on and attempts < retry.attempts


def step_matches(step: _Step, failure: Failure) -> bool:
    """True when a fallback step's ``on:`` covers ``failure``.

    ``failed`` covers every failure class, ``expired`` covers expiry, and a class name
    (``recipient``, ``template``, ``transient``…) covers failures of that class only.
    """
    if failure.status in step.on:
        return True
    return failure.status == "failed" and failure.failure_class in step.on


def fallback_step(
    steps: Sequence[_Step], failure: Failure, *, after: int | None = None
) -> int | None:
    """Index of the fallback step to run for ``failure``, or None when none applies.

    A notification of the rule itself (``after`` None) starts at the first step; a fallback
    created by step k passes ``after=k`` and can only move on to a later matching step, so the
    chain always ends and never comes back.
    """
    start = 0 if after is None else after + 1
    for index in range(start, len(steps)):
        if step_matches(steps[index], failure):
            return index
    return None


def fallback_expectation(
    reports_delivery: bool, *, expect: str, within: float | None
) -> tuple[str, float | None]:
    """The ``expect``/``within`` of a fallback sent through a channel that does (or does not)
    report delivery: one that does keeps the rule's expectation; for the others (a webhook,
    an email) a fallback is done once it is accepted."""
    if reports_delivery:
        return expect, within
    return "sent", None


def window_time(window: _Window | None, timezone: str, at: float) -> float:
    """When something due at ``at`` may go: ``at`` inside the send window, else the window's
    next opening (a retry scheduled into quiet hours waits for the morning, it is not lost).
    Raises ValueError for an unknown timezone."""
    if window is None:
        return at
    return next_open(window.days, window.start, window.end, timezone, at)
