"""The overview's counts: per rule, notifications created in a window by state, skip reasons
and a trend, counted per clock hour and kept between requests.

Counting a busy week reads every notification of it (about a second for a million). The
counts of an hour that is over change only when one of its notifications changes state later
(an ack, an expiry, an operator's decision), so :class:`HourlyCounts` keeps each closed hour's
counts and counts it again once they are ``fresh_for`` seconds old: a state change of an old
notification shows within ``fresh_for`` seconds. The current hour is counted at every request.
So that an open overview never waits for a whole window, each request also counts again, ahead
of time, some of the hours past half their freshness — as many as keep up at the pace the
requests come. Only the first look at a window (or one after more than ``fresh_for`` seconds
without a look) counts every hour of it. The send path pays nothing: nothing is counted as
notifications change.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nextstep.engine.clock import Clock
from nextstep.engine.ledger.reads import DELIVERED, ConsoleReads, Counts
from nextstep.engine.ledger.runner import LedgerRunner

HOUR = 3600.0
FRESH_FOR = 60.0  # seconds a closed hour's counts are used before they are counted again
# The windows: (width of a bar of the trend, bars). A window is whole bars of the clock, the
# last one running: the current 5 minutes and the 11 before; the current hour and the 23
# before; the current 6 hours (from 00, 06, 12 or 18 UTC) and the 27 before.
WINDOWS = {"hour": (300.0, 12), "day": (HOUR, 24), "week": (6 * HOUR, 28)}
KEEP = 7 * 24  # hours kept before the first one asked for (the longest window's)


def window_start(window: str, now: float) -> float:
    """When ``window`` (a key of WINDOWS) begins at ``now``."""
    width, bars = WINDOWS[window]
    return (now // width - (bars - 1)) * width


@dataclass(frozen=True, slots=True)
class Tally:
    """One rule's notifications created in a window, by their current state."""

    rule_id: str
    states: Mapping[str, int]
    skipped: Mapping[str, int]  # reason kind -> count
    trend: tuple[int, ...]  # notifications created per bar, oldest first
    to_delivered: float | None  # median seconds from creation to the first delivered ack

    @property
    def total(self) -> int:
        """Every notification of the rule in the window."""
        return sum(self.states.values())


@dataclass(slots=True)
class Period:
    """Counts of one period: (rule, state) and (rule, skip reason kind)."""

    at: float = 0.0  # when it was counted (the host's clock)
    states: dict[tuple[str, str], int] = field(default_factory=dict)
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)


def split(counts: Counts, first: int, last: int, at: float) -> dict[int, Period]:
    """``counts`` per period ``first``…``last`` (a count rounded beyond them goes to the
    nearest)."""
    periods = {p: Period(at) for p in range(first, last + 1)}
    for into, rows in ((0, counts.states), (1, counts.skipped)):
        for rule_id, p, key, n in rows:
            found = periods[min(max(p, first), last)]
            table = found.skipped if into else found.states
            table[rule_id, key] = table.get((rule_id, key), 0) + n
    return periods


def runs(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted hours as runs ``(first, last)`` of consecutive ones."""
    found: list[tuple[int, int]] = []
    for h in sorted(set(hours)):
        if found and found[-1][1] == h - 1:
            found[-1] = (found[-1][0], h)
        else:
            found.append((h, h))
    return found


class HourlyCounts:
    """Counts per clock hour: closed hours kept (see the module's docstring), the current one
    counted at each request."""

    def __init__(
        self, runner: LedgerRunner, reads: ConsoleReads, clock: Clock, fresh_for: float = FRESH_FOR
    ) -> None:
        self.runner, self.reads, self.clock, self.fresh_for = runner, reads, clock, fresh_for
        self.hours: dict[int, Period] = {}
        self.counted = 0  # closed hours counted since the start (for tests and the bench)
        self._rules: tuple[str, ...] = ()
        self._last: float | None = None  # the time of the last request
        self._lock = asyncio.Lock()

    async def _count(
        self, rule_ids: Sequence[str], first: int, last: int | None
    ) -> dict[int, Period]:
        """Counts of hours ``first``…``last`` (None: the current one, open-ended)."""
        until = None if last is None else (last + 1) * HOUR
        found = await self.runner.call(
            self.reads.period_counts, rule_ids, first * HOUR, until, HOUR
        )
        return split(found, first, first if last is None else last, self.clock.now())

    def _ahead(self, closed: range, due: set[int], now: float) -> list[int]:
        """Hours to count again before they are due, stalest first: as many as keep every hour
        of ``closed`` within half its freshness at the pace of the requests."""
        if self._last is None:
            return []
        share = len(closed) * (now - self._last) / (self.fresh_for / 2)
        stale = [h for h in closed if h not in due and now - self.hours[h].at >= self.fresh_for / 2]
        stale.sort(key=lambda h: self.hours[h].at)
        return stale[: math.ceil(share)]

    async def since(self, rule_ids: Sequence[str], first: int) -> dict[int, Period]:
        """Counts of the hours ``first``… up to the current one."""
        async with self._lock:
            now = self.clock.now()
            current = int(now // HOUR)
            rules = tuple(sorted(rule_ids))
            if rules != self._rules:  # another rule set (a reload): counted again
                self.hours.clear()
                self._rules = rules
            for old in [h for h in self.hours if h < first - KEEP]:
                del self.hours[old]  # before any window
            closed = range(first, current)
            due = {
                h for h in closed if h not in self.hours or now - self.hours[h].at >= self.fresh_for
            }
            for lo, hi in runs([*due, *self._ahead(closed, due, now)]):
                self.hours.update(await self._count(rules, lo, hi))
                self.counted += hi - lo + 1
            live = await self._count(rules, current, None)  # never kept: it is still running
            self._last = now
            return {h: self.hours[h] for h in closed} | live


def tallies(
    rule_ids: Sequence[str],
    periods: Mapping[int, Period],
    period: float,
    start: float,
    width: float,
    bars: int,
) -> list[Tally]:
    """Per rule (``rule_ids`` always, others when they have notifications), the window's
    counts from its ``periods`` (each ``period`` seconds long) in bars of ``width``; no
    median yet."""
    states: dict[str, dict[str, int]] = {r: {} for r in rule_ids}
    skipped: dict[str, dict[str, int]] = {r: {} for r in rule_ids}
    trend: dict[str, list[int]] = {r: [0] * bars for r in rule_ids}
    for p, counts in periods.items():
        bar = min(max(int((p * period - start) // width), 0), bars - 1)
        for (rule_id, state), n in counts.states.items():
            into = states.setdefault(rule_id, {})
            into[state] = into.get(state, 0) + n
            trend.setdefault(rule_id, [0] * bars)[bar] += n
        for (rule_id, kind), n in counts.skipped.items():
            into = skipped.setdefault(rule_id, {})
            into[kind] = into.get(kind, 0) + n
    return [Tally(r, states[r], skipped.get(r, {}), tuple(trend[r]), None) for r in sorted(states)]


def delivered(tally: Tally) -> int:
    """Notifications of the tally that were delivered (or read)."""
    return sum(tally.states.get(s, 0) for s in DELIVERED)
