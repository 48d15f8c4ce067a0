"""A channel's circuit: a failure of the channel rather than of one message opens it, a
successful probe closes it.

What opens it (:meth:`Circuit.verdict`, issue 15.9): an account failure (401/403, account
locked…); the channel unreachable (``Outcome.unreachable``: refused, DNS, TLS, connect
timeout — nothing was sent); and ``silent_limit`` attempts in a row that got no answer at all
(every request timing out after it was written). One timeout is one message in doubt; a run of
them with no answer between is the channel down, so the others wait instead of joining them.
While it is open nothing is sent on the channel and its notifications stay queued, their
attempts untouched. Probes are spaced from ``first_probe`` doubling to ``max_probe``. Pure:
times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nextstep.engine.backoff import capped_doubling
from nextstep.engine.model import Outcome, OutcomeKind

CircuitName = Literal["closed", "open"]
Cause = Literal["", "account", "unreachable", "no_answer"]
SILENT_LIMIT = 3  # attempts in a row without any answer that mean the channel is down


@dataclass(frozen=True, slots=True)
class CircuitStatus:
    """What ``status`` shows of one channel's circuit."""

    state: CircuitName
    reason: str = ""
    opened_at: float | None = None
    next_probe_at: float | None = None
    failed_probes: int = 0
    cause: Cause = ""  # the class of failure that opened it

    def public(self) -> dict[str, Any]:
        """What ``/healthz`` shows: the state, its class and times, not the provider's text."""
        doc = self.as_dict()
        del doc["reason"]
        return doc

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "state": self.state,
            "cause": self.cause,
            "reason": self.reason,
            "opened_at": self.opened_at,
            "next_probe_at": self.next_probe_at,
            "failed_probes": self.failed_probes,
        }


class Circuit:
    """The circuit of one channel."""

    def __init__(
        self,
        *,
        first_probe: float = 5.0,
        max_probe: float = 300.0,
        silent_limit: int = SILENT_LIMIT,
    ) -> None:
        self.first_probe = first_probe
        self.max_probe = max_probe
        self.silent_limit = silent_limit
        self._status = CircuitStatus("closed")
        self._silent = 0  # attempts in a row that got no answer

    def verdict(self, outcome: Outcome) -> tuple[Cause, str] | None:
        """Whether ``outcome`` (one attempt's) means the channel is down: the cause and
        reason to :meth:`open` it with, else None."""
        if outcome.kind is OutcomeKind.IN_DOUBT and outcome.http_status is None:
            self._silent += 1
        else:
            self._silent = 0
        if outcome.kind is OutcomeKind.ACCOUNT:
            return "account", outcome.reason or "account failure"
        if outcome.unreachable:
            return "unreachable", f"unreachable: {outcome.reason or 'no connection'}"
        if self._silent >= self.silent_limit:
            self._silent = 0
            return "no_answer", (
                f"{self.silent_limit} requests in a row got no answer: {outcome.reason}"
            )
        return None

    @property
    def is_open(self) -> bool:
        """True while nothing may be sent."""
        return self._status.state == "open"

    @property
    def status(self) -> CircuitStatus:
        """The current state, reason and probe schedule."""
        return self._status

    def open(self, reason: str, now: float, cause: Cause = "account") -> bool:
        """Open on a channel failure; True when it was closed (so the caller alerts once)."""
        if self.is_open:
            return False
        self._status = CircuitStatus("open", reason, now, now + self.first_probe, cause=cause)
        return True

    def probe_due(self, now: float) -> bool:
        """True when the circuit is open and its next probe time has come."""
        due = self._status.next_probe_at
        return self.is_open and due is not None and now >= due

    def probe_failed(self, now: float, reason: str = "") -> None:
        """A probe failed: try again later, each wait twice the previous, capped."""
        s = self._status
        failed = s.failed_probes + 1
        wait = capped_doubling(failed + 1, self.first_probe, self.max_probe)
        self._status = CircuitStatus(
            "open", reason or s.reason, s.opened_at, now + wait, failed, s.cause
        )

    def close(self) -> None:
        """A probe succeeded: sending resumes."""
        self._status = CircuitStatus("closed")
        self._silent = 0
