"""Send windows: "only Monday to Friday, 09:00-20:00 Europe/Madrid". Pure functions of a time.

A window belongs to the day it opens on: ``22:00-06:00`` on ``fri`` is open from Friday 22:00
to Saturday 06:00. ``24:00`` as an end means midnight at the end of the day.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))
END_OF_DAY = datetime.time(23, 59, 59, 999999)
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_days(spec: str | Iterable[str] | None) -> frozenset[int]:
    """``["mon-fri", "sun"]`` → ``{0, 1, 2, 3, 4, 6}`` (0 = Monday); ranges may wrap (fri-mon)."""
    if spec is None:
        return ALL_DAYS
    items = [spec] if isinstance(spec, str) else list(spec)
    days: set[int] = set()
    for item in items:
        first, _, last = item.strip().lower().partition("-")
        start, end = _day(first), _day(last or first)
        span = (end - start) % 7
        days.update((start + i) % 7 for i in range(span + 1))
    if not days:
        raise ValueError("a send window needs at least one day")
    return frozenset(days)


def _day(name: str) -> int:
    try:
        return DAY_NAMES.index(name.strip()[:3])
    except ValueError:
        raise ValueError(f"{name!r} is not a day (mon, tue, wed, thu, fri, sat, sun)") from None


def parse_hours(spec: str) -> tuple[datetime.time, datetime.time]:
    """``"09:00-20:00"`` → (09:00, 20:00); ``24:00`` as the end is the end of the day."""
    match = _HOURS.match(spec)
    if not match:
        raise ValueError(f"{spec!r} is not a time range (use 09:00-20:00)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{spec!r} is not a time range (use 09:00-20:00)")
    start = datetime.time(h1, m1)
    end = END_OF_DAY if h2 == 24 else datetime.time(h2, m2)
    if start == end:
        raise ValueError(f"{spec!r} is an empty window (use 00:00-24:00 for the whole day)")
    return start, end


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError naming it when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Madrid)"
        ) from None


def _is_open(
    local: datetime.datetime, days: frozenset[int], start: datetime.time, end: datetime.time
) -> bool:
    now, weekday = local.time(), local.weekday()
    if start < end:
        return weekday in days and start <= now and (now < end or end == END_OF_DAY)
    # Overnight: the evening part belongs to today, the morning part to yesterday's window.
    return (weekday in days and now >= start) or ((weekday - 1) % 7 in days and now < end)


def next_open(
    days: frozenset[int], start: datetime.time, end: datetime.time, timezone: str, at: float
) -> float:
    """``at`` when the window is open then, else the Unix time it next opens."""
    tz = zone(timezone)
    local = datetime.datetime.fromtimestamp(at, tz)
    if _is_open(local, days, start, end):
        return at
    for offset in range(8):
        day = local.date() + datetime.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        opening = datetime.datetime.combine(day, start, tzinfo=tz)
        # A wall-clock opening that falls in a DST gap is read as after the jump.
        opening = datetime.datetime.fromtimestamp(opening.timestamp(), tz)
        if opening.timestamp() > at:
            return opening.timestamp()
    raise ValueError("the send window never opens")
