"""A channel's circuit: an account-class failure opens it, a successful probe closes it.

While it is open nothing is sent on the channel and its notifications stay queued. Probes are
spaced from ``first_probe`` doubling to ``max_probe``. Pure: times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nextstep.engine.backoff import capped_doubling

CircuitName = Literal["closed", "open"]


@dataclass(frozen=True, slots=True)
class CircuitStatus:
    """What ``status`` shows of one channel's circuit."""

    state: CircuitName
    reason: str = ""
    opened_at: float | None = None
    next_probe_at: float | None = None
    failed_probes: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "state": self.state,
            "reason": self.reason,
            "opened_at": self.opened_at,
            "next_probe_at": self.next_probe_at,
            "failed_probes": self.failed_probes,
        }


class Circuit:
    """The circuit of one channel."""

    def __init__(self, *, first_probe: float = 5.0, max_probe: float = 300.0) -> None:
        self.first_probe = first_probe
        self.max_probe = max_probe
        self._status = CircuitStatus("closed")

    @property
    def is_open(self) -> bool:
        """True while nothing may be sent."""
        return self._status.state == "open"

    @property
    def status(self) -> CircuitStatus:
        """The current state, reason and probe schedule."""
        return self._status

    def open(self, reason: str, now: float) -> bool:
        """Open on an account failure; True when it was closed (so the caller alerts once)."""
        if self.is_open:
            return False
        self._status = CircuitStatus("open", reason, now, now + self.first_probe)
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
            "open", reason or s.reason, s.opened_at, now + wait, failed_probes=failed
        )

    def close(self) -> None:
        """A probe succeeded: sending resumes."""
        self._status = CircuitStatus("closed")
