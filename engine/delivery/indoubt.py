"""Settle notifications in doubt where the provider can tell (issue 15.11).

A notification is in doubt when its request may have reached the provider but no answer said
so (a read timeout, a crash mid-send). A channel that ``SearchesSent`` (a provider's message
history) is asked, ``safe_delay`` seconds after the attempt, for our message to that recipient
since the notification was created:

- found, and the message id belongs to no other notification → ``sent`` with that id (acks for
  it, kept while it was unknown, then apply);
- not found, and the history is complete (the operator says history storage is on) → ``queued``
  again, due now: it was never sent;
- otherwise (the history may be incomplete, or the lookup failed) it stays in doubt for a
  person (``nextstep release`` / ``cancel``), asked again every ``recheck`` seconds.

Each decision is a ``state`` history line (``by: history``) and a count of
``nextstep_in_doubt_resolved_total{channel, outcome}``; the daemon runs :func:`run_resolver`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from nextstep.engine.clock import Clock
from nextstep.engine.errors import DeliveryError, StoreError
from nextstep.engine.ledger.base import Notification, Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import IN_DOUBT_RESOLVED
from nextstep.engine.model import Message, State
from nextstep.engine.plugins import SearchesSent, SentSearch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResolveSettings:
    """How often the loop runs, how often one notification is asked about, how many rows a
    round reads (the newest in doubt), how many lookups it makes at most (those waiting
    longest first, so a large backlog is worked through), and how long after it is created one
    is still asked."""

    every: float = 30.0
    recheck: float = 300.0
    batch: int = 5000
    lookups: int = 200
    max_age: float = 7 * 86400.0


@dataclass
class ResolveReport:
    """One round: ids found sent, queued again, kept in doubt."""

    sent: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)


def _in_doubt(store: Store, limit: int) -> list[Notification]:
    return store.list(state=State.IN_DOUBT, limit=limit)


def _decide(
    store: Store,
    n: Notification,
    search: SentSearch,
    now: float,
    claimed: set[str],
    first: bool,
) -> str:
    """Apply what the history said of ``n`` in one transaction: ``sent``, ``queued`` or
    ``kept`` (the ``first`` time with a ``lookup`` history line saying why)."""
    with store.transaction() as tx:
        taken = tx.tracked_by_provider(list(search.matches)) if search.matches else {}
        free = [m for m in search.matches if m not in taken and m not in claimed]
        if free:
            detail = {"by": "history", "provider_id": free[0]}
            if tx.resolve_in_doubt(n.id, now, free[0], detail):
                claimed.add(free[0])
                return "sent"
            return "gone"
        if search.complete:  # nothing of ours that is not already another notification's
            detail = {"by": "history", "reason": "not in the provider's message history"}
            return "queued" if tx.resolve_in_doubt(n.id, now, None, detail) else "gone"
        if first:
            why = "only other notifications' messages" if search.matches else "nothing"
            note = {
                "by": "history",
                "found": why,
                "decision": "left in doubt: the history may be incomplete (history storage "
                "not declared on)",
            }
            tx.add_history([(n.id, now, "lookup", note)])
    return "kept"


def _due(
    n: Notification,
    channels: Mapping[str, SearchesSent],
    asked: Mapping[int, float],
    settings: ResolveSettings,
    now: float,
) -> bool:
    channel = channels.get(n.channel)
    if channel is None or now - n.created_at > settings.max_age:
        return False
    return (
        now >= n.updated_at + channel.safe_delay and now >= asked.get(n.id, 0.0) + settings.recheck
    )


async def resolve_once(
    runner: LedgerRunner,
    channels: Mapping[str, SearchesSent],
    clock: Clock,
    settings: ResolveSettings = ResolveSettings(),
    asked: MutableMapping[int, float] | None = None,
) -> ResolveReport:
    """One round over the notifications in doubt of ``channels`` (``asked``: when each was
    last asked about, kept by the caller between rounds)."""
    asked = {} if asked is None else asked
    report = ResolveReport()
    now = clock.now()
    rows = await runner.call(_in_doubt, runner.store, settings.batch)
    claimed: set[str] = set()
    due = sorted(
        (n for n in rows if _due(n, channels, asked, settings, now)),
        key=lambda n: (asked.get(n.id, 0.0), n.updated_at),  # never asked, then least recently
    )
    for n in due[: settings.lookups]:
        channel = channels[n.channel]
        first = n.id not in asked
        asked[n.id] = now
        try:
            search = await channel.find_sent(
                Message(n.channel, n.recipient, n.fields), n.created_at
            )
        except DeliveryError as exc:
            log.info("history lookup of #%d failed: %s", n.id, exc)
            continue
        outcome = await runner.call(_decide, runner.store, n, search, clock.now(), claimed, first)
        if outcome == "gone":  # an operator decided meanwhile
            continue
        IN_DOUBT_RESOLVED.labels(n.channel, outcome).inc()
        getattr(report, outcome).append(n.id)
        if outcome != "kept":
            asked.pop(n.id, None)
    if report.sent or report.queued:
        log.warning(
            "in doubt settled from the provider's history: %d sent, %d queued again, %d left "
            "for a person",
            len(report.sent),
            len(report.queued),
            len(report.kept),
        )
    live = {n.id for n in rows}
    for stale in [i for i in asked if i not in live]:
        del asked[stale]
    return report


async def run_resolver(
    runner: LedgerRunner,
    channels: Mapping[str, SearchesSent],
    clock: Clock,
    settings: ResolveSettings = ResolveSettings(),
) -> None:
    """Run :func:`resolve_once` every ``settings.every`` seconds until cancelled."""
    asked: dict[int, float] = {}
    while True:
        try:
            await resolve_once(runner, channels, clock, settings, asked)
        except StoreError as exc:
            log.error("in-doubt resolver: %s", exc)
        await clock.sleep(settings.every)
