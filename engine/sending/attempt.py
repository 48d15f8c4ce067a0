"""What to do after one send attempt: a pure function of the notification, the channel's
classified answer, the rule's retry policy, the time and a random source.

- accepted: ``sent``, with the provider's message id;
- account (401/403, account locked…) or the channel unreachable (``Outcome.unreachable``:
  refused, DNS, TLS): back to ``queued`` at once and not held against the retry budget: the
  dispatcher opens the channel's circuit, nothing is lost;
- in doubt (the provider may have it): ``in_doubt``, never sent again automatically, unless
  the rule says ``in_doubt: resend``;
- a kind in the policy's ``on`` (transient by default) with attempts left: ``queued`` again
  after the backoff, and never before the provider's ``Retry-After``;
- anything else (recipient, template, or no attempts left): ``failed`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from nextstep.engine.backoff import Random, compute_backoff
from nextstep.engine.ledger.base import AttemptResult, Notification
from nextstep.engine.model import Outcome, OutcomeKind, State

ANSWER_LIMIT = 2000  # characters of the provider's raw answer kept in history


class RetryRules(Protocol):
    """The fields of ``nextstep.engine.rules.rule.RetryPolicy`` the decision reads."""

    @property
    def attempts(self) -> int:
        """Total send attempts, the first included."""
        ...

    @property
    def backoff(self) -> float:
        """Seconds before the first retry."""
        ...

    @property
    def max_backoff(self) -> float:
        """The longest wait between two attempts."""
        ...

    @property
    def on(self) -> frozenset[str]:
        """OutcomeKind values that are retried."""
        ...

    @property
    def in_doubt(self) -> str:
        """``hold`` or ``resend``."""
        ...


def outcome_doc(outcome: Outcome) -> dict[str, Any]:
    """The outcome as kept in the attempt's history line (empty values left out)."""
    doc: dict[str, Any] = {"kind": outcome.kind.value}
    if outcome.reason:
        doc["reason"] = outcome.reason
    for key in ("provider_id", "code", "http_status", "retry_after"):
        value = getattr(outcome, key)
        if value is not None:
            doc[key] = value
    if outcome.answer:
        doc["answer"] = outcome.answer[:ANSWER_LIMIT]
    return doc


def _retryable(kind: OutcomeKind, policy: RetryRules) -> bool:
    if kind is OutcomeKind.IN_DOUBT:
        return policy.in_doubt == "resend"
    return kind.value in policy.on


def decide(
    notification: Notification,
    outcome: Outcome,
    policy: RetryRules,
    now: float,
    rng: Random,
) -> AttemptResult:
    """The ledger update for one attempt of ``notification`` that ended with ``outcome``."""
    attempt = notification.attempts + 1
    kind = outcome.kind
    doc = outcome_doc(outcome)
    if kind is OutcomeKind.ACCEPTED:
        return AttemptResult(
            notification.id, now, State.SENT, doc, provider_id=outcome.provider_id, attempt=attempt
        )
    reason = outcome.reason or kind.value
    state, next_at, counts = _after_failure(kind, attempt, outcome, policy, now, rng)
    if kind is OutcomeKind.ACCOUNT or outcome.unreachable:
        reason = f"channel stopped: {reason}"
    elif state is not State.QUEUED and _retryable(kind, policy):
        reason = f"gave up after {attempt} attempts: {reason}"
    return AttemptResult(
        notification.id,
        now,
        state,
        doc,
        next_attempt_at=next_at,
        reason=reason,
        failure_class=kind.value,
        attempt=attempt,
        counts=counts,
    )


def _after_failure(
    kind: OutcomeKind,
    attempt: int,
    outcome: Outcome,
    policy: RetryRules,
    now: float,
    rng: Random,
) -> tuple[State, float | None, bool]:
    """(state, next attempt time, whether the attempt counts) after a failed attempt."""
    if kind is OutcomeKind.ACCOUNT or outcome.unreachable:
        return State.QUEUED, now, False
    if _retryable(kind, policy) and attempt < policy.attempts:
        delay = compute_backoff(attempt, policy, rng)
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        return State.QUEUED, now + delay, True
    return (State.IN_DOUBT if kind is OutcomeKind.IN_DOUBT else State.FAILED), None, True


@dataclass(frozen=True, slots=True)
class NoRetry:
    """A policy that never retries: what a notification gets when its rule's policy cannot be
    found (its outcome is still recorded, nothing is sent twice)."""

    attempts: int = 1
    backoff: float = 0.0
    max_backoff: float = 0.0
    on: frozenset[str] = frozenset()
    in_doubt: str = "hold"


NO_RETRY = NoRetry()


def interrupted(notification: Notification, now: float) -> AttemptResult:
    """The result of an attempt cut off after its request may have been written."""
    reason = "interrupted while sending: the provider may have accepted it"
    return AttemptResult(
        notification_id=notification.id,
        at=now,
        state=State.IN_DOUBT,
        outcome={"kind": OutcomeKind.IN_DOUBT.value, "reason": reason},
        reason=reason,
        failure_class=OutcomeKind.IN_DOUBT.value,
        attempt=notification.attempts + 1,
    )
