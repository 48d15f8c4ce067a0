"""The overview: per rule, notifications of the last hour, day or week by state, the delivery
rate, the median time to delivered and a trend; the triggers' and channels' health. The page
asks for its live part again every ``refresh`` seconds (static/console.js)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.runtime.console.counting import (
    FRESH_FOR,
    HOUR,
    WINDOWS,
    HourlyCounts,
    Tally,
    delivered,
    split,
    tallies,
    window_start,
)
from nextstep.engine.runtime.console.sessions import Session
from nextstep.engine.runtime.console.web import PREFIX, Web

COLUMNS = ("queued", "sent", "delivered", "read", "failed", "expired", "skipped", "in_doubt")
OTHER = ("cancelled", "superseded")
HANDED = ("sent", "delivered", "read", "failed", "expired", "in_doubt")
BAR_NAMES = {"hour": "bars of 5 minutes", "day": "bars of an hour", "week": "bars of 6 hours"}
CACHE_FOR = 1.0  # seconds an overview is reused (several open consoles refresh it)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a trend's little chart (SVG units: 4 wide, up to 20 high)."""

    x: int
    y: float
    height: float
    count: int


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One line of the overview's table."""

    rule_id: str
    counts: Mapping[str, int]
    other: int
    total: int
    skipped: Mapping[str, int]
    rate: float | None  # delivered or read, of what was handed to a channel
    to_delivered: float | None
    bars: Sequence[Bar]


def bars(trend: Sequence[int]) -> list[Bar]:
    """The trend as bars scaled to the highest one."""
    top = max(trend, default=0) or 1
    out = []
    for i, count in enumerate(trend):
        height = 0.0 if count == 0 else max(1.0, 20.0 * count / top)
        out.append(Bar(i * 5, 20.0 - height, height, count))
    return out


def row(tally: Tally) -> RuleRow:
    """A table line from a rule's tally."""
    states = tally.states
    counts = {c: states.get(c, 0) for c in COLUMNS}
    counts["queued"] += states.get("sending", 0)
    handed = sum(states.get(s, 0) for s in HANDED)
    reached = states.get("delivered", 0) + states.get("read", 0)
    return RuleRow(
        rule_id=tally.rule_id,
        counts=counts,
        other=sum(states.get(s, 0) for s in OTHER),
        total=tally.total,
        skipped=tally.skipped,
        rate=reached / handed if handed else None,
        to_delivered=tally.to_delivered,
        bars=bars(tally.trend),
    )


def health_parts(doc: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(triggers, channels) of a health document, as the page lists them."""
    triggers = []
    for t in doc.get("triggers", []):
        detail = t.get("detail") or {}
        failing = detail.get("state") == "error"
        triggers.append(
            {
                "name": t.get("name", ""),
                "kind": t.get("kind", ""),
                "state": f"{t.get('state')} (failing)" if failing else str(t.get("state", "")),
                "ok": t.get("state") == "running" and not failing,
                "restarts": t.get("restarts", 0),
                "error": t.get("last_error") or detail.get("last_error") or "",
            }
        )
    channels = []
    for name, c in (doc.get("circuits") or {}).items():
        detail = c.get("detail") or {}
        channels.append(
            {
                "name": name,
                "circuit": str(c.get("state", "?")),
                "ok": str(c.get("state", "closed")) == "closed",
                "backlog": c.get("backlog", 0),
                "in_flight": c.get("in_flight", 0),
                "error": c.get("cause") or c.get("reason") or detail.get("last_error") or "",
            }
        )
    return triggers, channels


class Overview:
    """The overview's pages, with a short cache shared by every viewer."""

    def __init__(self, web: Web) -> None:
        self.web = web
        host = web.host
        self.hourly = HourlyCounts(host.runner, host.reads, host.clock)
        self._cache: dict[str, tuple[float, list[Tally]]] = {}
        self._medians_cache: dict[str, tuple[float, dict[str, float]]] = {}

    async def _counted(self, rule_ids: Sequence[str], window: str, start: float) -> list[Tally]:
        host = self.web.host
        width, bars = WINDOWS[window]
        if width < HOUR:  # the last hour: counted whole, it is short
            found = await host.runner.call(host.reads.period_counts, rule_ids, start, None, width)
            first = int(start // width)
            periods = split(found, first, first + bars - 1, host.clock.now())
            return tallies(rule_ids, periods, width, start, width, bars)
        hours = await self.hourly.since(rule_ids, int(start // HOUR))
        return tallies(rule_ids, hours, HOUR, start, width, bars)

    async def _medians(self, window: str, found: list[Tally], start: float) -> dict[str, float]:
        """Medians to delivered of the window's rules, at most FRESH_FOR seconds old (they
        read a thousand histories per rule: computed once a minute, not at every refresh)."""
        host = self.web.host
        cached = self._medians_cache.get(window)
        now = host.clock.now()
        if cached is not None and now - cached[0] < FRESH_FOR:
            return cached[1]
        reached = [t.rule_id for t in found if delivered(t)]
        medians = await host.runner.call(host.reads.times_to_delivered, reached, start)
        self._medians_cache[window] = (now, medians)
        return medians

    async def tallies(self, window: str, now: float) -> list[Tally]:
        """The window's tallies at ``now``, at most CACHE_FOR seconds old."""
        host = self.web.host
        cached = self._cache.get(window)
        if cached is not None and now - cached[0] < CACHE_FOR:
            return cached[1]
        start = window_start(window, now)
        rule_ids = sorted(host.config().rules)
        found = await self._counted(rule_ids, window, start)
        medians = await self._medians(window, found, start)
        found = [dataclasses.replace(t, to_delivered=medians.get(t.rule_id)) for t in found]
        self._cache[window] = (now, found)
        return found

    async def context(self, request: Request) -> dict[str, Any]:
        """What both templates show."""
        window = request.query_params.get("window", "day")
        window = window if window in WINDOWS else "day"
        now = self.web.host.clock.now()
        rows = [row(t) for t in await self.tallies(window, now)]
        triggers, channels = health_parts(self.web.host.health())
        return {
            "window": window,
            "since": window_start(window, now),
            "bar": BAR_NAMES[window],
            "windows": list(WINDOWS),
            "rows": rows,
            "columns": COLUMNS,
            "triggers": triggers,
            "channels": channels,
            "reload": self.web.host.reload(),
            "updated": now,
            "refresh": int(self.web.settings.refresh * 1000),
        }

    async def page(self, request: Request, session: Session) -> Response:
        """``GET /ui/overview``."""
        return self.web.render("overview.html", session, **await self.context(request))

    async def live(self, request: Request, session: Session) -> Response:
        """``GET /ui/overview/live``: the part that refreshes itself."""
        return self.web.render("overview_live.html", session, **await self.context(request))

    def routes(self) -> list[BaseRoute]:
        """The overview's routes."""
        return [
            Route(f"{PREFIX}/overview", self.web.page(self.page), methods=["GET"]),
            Route(f"{PREFIX}/overview/live", self.web.page(self.live), methods=["GET"]),
        ]
