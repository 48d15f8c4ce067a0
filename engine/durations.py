"""Durations (``30s``, ``15m``, ``2h``, ``1d``) and rates (``80/s``) as integrators write them."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h|d)\s*$")


def parse_duration(text: str | int | float) -> float:
    """Return seconds for ``30s``/``15m``/``2h``/``1d`` (a bare number means seconds).

    Raises ValueError with a message that shows the accepted forms.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration (use 30s, 15m, 2h or 1d)")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"{text!r} is negative; a duration must be >= 0")
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use 30s, 15m, 2h or 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_rate(text: str | int | float) -> float:
    """Return events per second for ``80/s``, ``600/m``… (a bare number means per second)."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a rate (use 80/s or 600/m)")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a rate (use 80/s or 600/m)")
        value = float(match.group(1)) / _UNITS[match.group(2)]
    if value <= 0:
        raise ValueError(f"{text!r} must be more than zero")
    return value
