"""Filters an integrator needs for CRM data, on top of Jinja's own (default, title, truncate…).

``date(fmt)`` formats ISO dates and date-times and the usual spreadsheet spellings (20/06/2026,
2026/06/20, 20.06.2026, 20 Jun 2026, Jun 20, 2026, 20260620…); ``parse_date`` gives the date
itself for comparisons; ``phone`` normalises a number to international digits. Bad input raises
ValueError, which the renderer reports as a render error naming the rule and field.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import pass_context
from jinja2.filters import do_title
from jinja2.runtime import Undefined

from nextstep.engine.rules.compat import Context
from nextstep.engine.rules.phones import PhoneError, normalise_phone

COUNTRY_VARIABLE = "__nextstep_default_country"

_NUMERIC = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
_TIME_TAIL = re.compile(r"^(.+?\d),?[ T]+(\d{1,2}:\d{2}(?::\d{2})?)$")
_TEXT_FORMATS = ("%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%B %d %Y")
_NO_PAD = re.compile(r"%%|%-([dmHIMSjy])")
_NO_PAD_FIELDS: dict[str, Callable[[datetime.date], int]] = {
    "d": lambda d: d.day,
    "m": lambda d: d.month,
    "H": lambda d: getattr(d, "hour", 0),
    "I": lambda d: (getattr(d, "hour", 0) % 12) or 12,
    "M": lambda d: getattr(d, "minute", 0),
    "S": lambda d: getattr(d, "second", 0),
    "j": lambda d: d.timetuple().tm_yday,
    "y": lambda d: d.year % 100,
}

Moment = datetime.date | datetime.datetime


def _defined(value: Any) -> None:
    """Let an undefined input fail as undefined (naming the missing field), not as bad data."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError here


def parse_date(value: Any, dayfirst: bool = True) -> Moment:
    """A date or datetime from a date object or one of the usual written forms.

    ``dayfirst`` settles 01/02/2026 (1 February when true); 13/02 and 02/13 are never ambiguous.
    """
    if isinstance(value, datetime.date):
        return value
    if not isinstance(value, str):
        _defined(value)
        raise ValueError(f"{value!r} is not a date")
    text = value.strip()
    if not text:
        raise ValueError("an empty value is not a date")
    return _parse_text(text, dayfirst)


@lru_cache(maxsize=4096)
def _parse_text(text: str, dayfirst: bool) -> Moment:
    for iso in (datetime.date.fromisoformat, datetime.datetime.fromisoformat):
        try:
            return iso(text)
        except ValueError:
            continue
    timed = _TIME_TAIL.match(text)
    if timed:
        day = _parse_day(timed.group(1), dayfirst, text)
        hours, minutes, seconds = (int(p) for p in (timed.group(2).split(":") + ["0"])[:3])
        try:
            return datetime.datetime.combine(day, datetime.time(hours, minutes, seconds))
        except ValueError:
            raise ValueError(f"{text!r} is not a date and time") from None
    return _parse_day(text, dayfirst, text)


def _parse_day(text: str, dayfirst: bool, original: str) -> datetime.date:
    if len(text) == 8 and text.isdigit():
        try:
            return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            raise ValueError(f"{original!r} is not a date") from None
    numeric = _NUMERIC.match(text)
    if numeric:
        return _numeric_day(*(int(g) for g in numeric.groups()), dayfirst=dayfirst, text=original)
    for fmt in _TEXT_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{original!r} is not a date (use 2026-06-20 or 20/06/2026)")


def _numeric_day(a: int, b: int, c: int, *, dayfirst: bool, text: str) -> datetime.date:
    if a > 31:  # 2026/06/20
        orders = [(a, b, c)]
    else:
        year = c + 2000 if c < 100 else c
        orders = [(year, b, a), (year, a, b)] if dayfirst else [(year, a, b), (year, b, a)]
    for year, month, day in orders:
        try:
            return datetime.date(year, month, day)
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date")


def format_date(
    value: Any, fmt: str = "%Y-%m-%d", tz: str | None = None, dayfirst: bool = True
) -> str:
    """``date(fmt)``: format a date; ``%-d``, ``%-m``… drop the leading zero on every platform.

    ``tz`` converts an aware datetime to that zone (naive ones are taken as UTC) first.
    """
    if type(value) is str and type(fmt) is str:
        return _format_text(value, fmt, tz, bool(dayfirst))  # exported dates repeat: format once
    return _format(value, fmt, tz, dayfirst)


@lru_cache(maxsize=4096)
def _format_text(value: str, fmt: str, tz: str | None, dayfirst: bool) -> str:
    return _format(value, fmt, tz, dayfirst)


def _format(value: Any, fmt: str, tz: str | None, dayfirst: bool) -> str:
    moment = parse_date(value, dayfirst)
    if tz is not None:
        moment = _in_zone(moment, tz)
    if "%-" not in fmt:
        return moment.strftime(fmt)
    pieces = _no_pad_pieces(fmt)  # strftime formats alternate with the letters of %-d, %-m…
    return "".join(
        str(_NO_PAD_FIELDS[piece](moment)) if i % 2 else moment.strftime(piece) if piece else ""
        for i, piece in enumerate(pieces)
    )


@lru_cache(maxsize=256)
def _no_pad_pieces(fmt: str) -> list[str]:
    pieces, start = [], 0
    for match in _NO_PAD.finditer(fmt):
        if match.group(1):  # %-d; a %% is left to strftime
            pieces += [fmt[start : match.start()], match.group(1)]
            start = match.end()
    return [*pieces, fmt[start:]]


def _in_zone(moment: Moment, tz: str) -> Moment:
    if not isinstance(moment, datetime.datetime):
        return moment
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(zone)


@pass_context
def phone(context: Context, value: Any, country: str | None = None) -> str:
    """``phone``: international digits, reading numbers without a prefix in ``country`` (default:
    the config's ``default_country``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        _defined(value)
        raise ValueError(f"{value!r} is not a phone number")
    region = country or context.get(COUNTRY_VARIABLE)
    try:
        return normalise_phone(value, region.upper() if isinstance(region, str) else None)
    except PhoneError as exc:
        raise ValueError(str(exc)) from None


def title(value: Any) -> str:
    """Jinja's ``title``, remembered for the names that repeat through an export."""
    return _title(value) if type(value) is str else do_title(value)


@lru_cache(maxsize=4096)
def _title(text: str) -> str:
    return do_title(text)


FILTERS: dict[str, Callable[..., Any]] = {
    "date": format_date,
    "title": title,
    "parse_date": parse_date,
    "phone": phone,
}
