"""A spreadsheet cell as text, the way its user sees it (pure; no spreadsheet library here).

Event values are text, as a CSV export's are. A number keeps the digits its number format
shows: a phone stored as the number 600111222 with the format ``0000000000`` is
``0600111222``; a whole number is written without ``.0`` and never in exponent form
(``34600111222``, not ``3.46e10``); ``0.00`` keeps two decimals, ``0%`` is a percentage. Dates
and times become ISO text (``2026-06-20``, ``2026-06-21T10:30:00``), which the ``date`` filter
reads, instead of Excel's serial numbers. Thousands separators are left out: how they are
shown depends on the reader's locale, not on the file.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

_QUOTED = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')  # literal text, escapes, [colours]/[conditions]


@lru_cache(maxsize=256)
def _number_shape(number_format: str) -> tuple[str, int, int]:
    """(kind, digits, decimals) of a number format's first section: ``("pad", 10, 0)`` for
    ``0000000000``, ``("fixed", 0, 2)`` for ``#,##0.00``, ``("percent", 0, 1)`` for
    ``0.0%``, ``("general", 0, 0)`` otherwise."""
    section = _QUOTED.sub("", number_format.split(";")[0])
    if not section or section.lower() == "general" or "@" in section:
        return "general", 0, 0
    integer, _, fraction = section.partition(".")
    decimals = sum(1 for c in fraction if c in "0#?")
    if "%" in section:
        return "percent", 0, decimals
    zeros = integer.count("0")
    if zeros > 1 and "#" not in integer and "," not in integer and not fraction:
        return "pad", zeros, 0
    if "0" in section or "#" in section:
        return "fixed", 0, decimals
    return "general", 0, 0


def general(value: float | int) -> str:
    """A number as Excel's General format shows it, without exponent: 15 significant
    digits, no trailing ``.0``."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    digits = f"{value:.15g}"
    if "e" in digits:  # very small or very large: written out in full
        return format(Decimal(digits).normalize(), "f")
    return digits


def _rounded(value: float | int, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, halves away from zero (as Excel rounds)."""
    step = Decimal(1).scaleb(-decimals)
    return str(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP))


def number_text(value: float | int, number_format: str | None) -> str:
    """A number cell as text, following its number format (see the module docstring)."""
    kind, digits, decimals = _number_shape(number_format or "General")
    if kind == "pad" and float(value).is_integer():
        sign = "-" if value < 0 else ""
        return f"{sign}{abs(int(value)):0{digits}d}"
    if kind == "percent":
        return _rounded(value * 100, decimals) + "%"
    if kind == "fixed":
        return _rounded(value, decimals)
    return general(value)


def cell_text(value: Any, number_format: str | None = None) -> str:
    """Any cell value as the event's text value (empty cells are empty text)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return number_text(value, number_format)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and not _shows_time(number_format):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


def _shows_time(number_format: str | None) -> bool:
    section = _QUOTED.sub("", (number_format or "").lower())
    return "h" in section or "s" in section
