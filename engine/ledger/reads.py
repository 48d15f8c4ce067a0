"""What the web console asks of the ledger, by meaning: every backend implements
:class:`ConsoleReads` (:mod:`nextstep.engine.ledger.sqlite.console`,
:mod:`nextstep.engine.ledger.postgres.console`).

Reads are one consistent snapshot each; :meth:`ConsoleReads.decide` is the one write: an
operator's release or cancel, recorded in the notification's history with who and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from nextstep.engine.ledger.base import HistoryEntry, Notification

DELIVERED = ("delivered", "read")  # the states and ack statuses of a delivered message
MEDIAN_SAMPLE = 1000  # newest delivered notifications a median time to delivered is taken over
PHONE_TAIL = 4  # digits a recipient filter needs at least (the index holds the last 4)
CHAIN_DEPTH = 20  # fallback chains end (each step only later ones); this bounds a bad row
_IDS = re.compile(r"#\d+")


def reason_kind(reason: str) -> str:
    """A skip reason without the ids in it (``duplicate of #12`` → ``duplicate of #…``), so
    reasons can be counted together."""
    return _IDS.sub("#…", reason) or "(no reason)"


# A count of notifications created in one period: (rule id, period, state or reason kind, n),
# where the period is ``floor(created_at / width)`` (periods of every count line up).
PeriodCount = tuple[str, int, str, int]


@dataclass(frozen=True, slots=True)
class Counts:
    """Notifications created in a span, per rule and period: by state, and the skipped ones by
    the kind of their reason (:func:`reason_kind`)."""

    states: Sequence[PeriodCount] = ()
    skipped: Sequence[PeriodCount] = ()


@dataclass(frozen=True, slots=True)
class Filters:
    """Which notifications a list shows; every criterion given must hold."""

    rule_id: str | None = None
    state: str | None = None
    since: float | None = None  # created at or after
    until: float | None = None  # created before
    phone_tail: str | None = None  # the recipient's last digits (PHONE_TAIL at least)
    dedupe_key: str | None = None
    provider_id: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Where a page of the list ends (newest first): the last row's creation time and id."""

    created_at: float
    id: int

    def text(self) -> str:
        """The cursor as a query parameter."""
        return f"{self.created_at!r}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """A cursor from :meth:`text`, None when ``text`` is not one."""
        at, _, ident = text.partition(":")
        try:
            return cls(float(at), int(ident))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Relative:
    """A notification of the same fallback chain, as the trace links it."""

    id: int
    state: str
    channel: str
    fallback_step: int | None
    parent_id: int | None


def chain(
    notification_id: int,
    relative: Callable[[int], Relative | None],
    children: Callable[[int], list[int]],
) -> list[Relative]:
    """The fallback chain through a notification: its ancestors, itself, its descendants;
    ``relative`` reads one notification, ``children`` the fallbacks it started."""
    line: list[Relative] = []
    current = relative(notification_id)
    while current is not None and len(line) < CHAIN_DEPTH:
        line.insert(0, current)
        current = None if current.parent_id is None else relative(current.parent_id)
    pending = children(notification_id)
    while pending and len(line) < 2 * CHAIN_DEPTH:
        child = relative(pending.pop(0))
        if child is not None:
            line.append(child)
            pending += children(child.id)
    return line


@dataclass(frozen=True, slots=True)
class Trace:
    """One notification, its history and its fallback chain (oldest ancestor first)."""

    notification: Notification
    history: Sequence[HistoryEntry]
    chain: Sequence[Relative] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Decision:
    """An operator's decision on a notification: release (send it again) or cancel."""

    action: Literal["release", "cancel"]
    by: str
    reason: str
    at: float

    def detail(self) -> dict[str, Any]:
        """The history line that records it."""
        return {"decision": self.action, "by": self.by, "reason": self.reason}


@runtime_checkable
class ConsoleReads(Protocol):
    """The ledger as the web console sees it."""

    def period_counts(
        self, rule_ids: Sequence[str], since: float, until: float | None, width: float
    ) -> Counts:
        """Notifications created in ``[since, until)`` (``until`` None: no end) per period of
        ``width`` seconds, of ``rule_ids`` and of every rule the ledger keeps a version of."""
        ...

    def times_to_delivered(self, rule_ids: Sequence[str], since: float) -> dict[str, float]:
        """Per rule, the median seconds from creation to the first delivered (or read) ack,
        over its newest MEDIAN_SAMPLE delivered or read notifications created since ``since``;
        rules without one are left out."""
        ...

    def browse(self, filters: Filters, after: Cursor | None, limit: int) -> list[Notification]:
        """Notifications matching ``filters``, newest first, after the cursor ``after``."""
        ...

    def trace(self, notification_id: int) -> Trace | None:
        """One notification with its history and fallback chain; None when unknown."""
        ...

    def in_doubt(self, limit: int) -> list[Notification]:
        """Notifications in doubt, oldest decision first (longest waiting first)."""
        ...

    def rule_versions(self, rule_id: str) -> dict[str, Mapping[str, Any]]:
        """Every kept definition of a rule, by version."""
        ...

    def decide(self, notification_id: int, decision: Decision) -> bool:
        """Release an in-doubt notification or cancel a queued/in-doubt one, with a history
        line naming who decided and why; False when its state does not allow it."""
        ...
