"""Send windows: pure next-opening times, overnight windows, DST, bad specs."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from nextstep.engine.rules.sendwindow import END_OF_DAY, next_open, parse_days, parse_hours

MADRID = "Europe/Madrid"


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def test_parse_days() -> None:
    assert parse_days(None) == frozenset(range(7))
    assert parse_days(["mon-fri"]) == frozenset({0, 1, 2, 3, 4})
    assert parse_days("sat") == frozenset({5})
    assert parse_days(["fri-mon"]) == frozenset({4, 5, 6, 0})
    assert parse_days(["mon", "wed", "sun"]) == frozenset({0, 2, 6})
    with pytest.raises(ValueError, match="is not a day"):
        parse_days(["funday"])


def test_parse_hours() -> None:
    assert parse_hours("09:00-20:00") == (datetime.time(9), datetime.time(20))
    assert parse_hours("22:00-06:30") == (datetime.time(22), datetime.time(6, 30))
    assert parse_hours("00:00-24:00") == (datetime.time(0), END_OF_DAY)
    for bad in ("9-17", "09:00-09:00", "25:00-26:00", "09:00-24:30", "09:60-10:00"):
        with pytest.raises(ValueError):
            parse_hours(bad)


WEEKDAYS = parse_days(["mon-fri"])
NINE, EIGHT_PM = datetime.time(9), datetime.time(20)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2026-06-17T10:00:00+02:00", "2026-06-17T10:00:00+02:00", id="open-now"),
        pytest.param("2026-06-17T08:59:00+02:00", "2026-06-17T09:00:00+02:00", id="before-opening"),
        pytest.param("2026-06-17T20:00:00+02:00", "2026-06-18T09:00:00+02:00", id="at-closing"),
        pytest.param("2026-06-19T21:00:00+02:00", "2026-06-22T09:00:00+02:00", id="friday-night"),
        pytest.param("2026-06-20T12:00:00+02:00", "2026-06-22T09:00:00+02:00", id="saturday"),
        pytest.param("2026-06-17T06:30:00Z", "2026-06-17T09:00:00+02:00", id="utc-input"),
    ],
)
def test_next_open_weekdays(now: str, expected: str) -> None:
    assert next_open(WEEKDAYS, NINE, EIGHT_PM, MADRID, at(now)) == at(expected)


def test_overnight_window_belongs_to_its_opening_day() -> None:
    fridays = parse_days("fri")
    start, end = parse_hours("22:00-06:00")
    # Saturday 03:00 is inside Friday's window; Saturday 07:00 waits a week.
    assert next_open(fridays, start, end, "UTC", at("2026-06-20T03:00:00Z")) == at(
        "2026-06-20T03:00:00Z"
    )
    assert next_open(fridays, start, end, "UTC", at("2026-06-20T07:00:00Z")) == at(
        "2026-06-26T22:00:00Z"
    )
    assert next_open(fridays, start, end, "UTC", at("2026-06-19T23:00:00Z")) == at(
        "2026-06-19T23:00:00Z"
    )


def test_whole_day_window() -> None:
    start, end = parse_hours("00:00-24:00")
    sunday = parse_days("sun")
    assert next_open(sunday, start, end, "UTC", at("2026-06-21T23:59:30Z")) == at(
        "2026-06-21T23:59:30Z"
    )
    assert next_open(sunday, start, end, "UTC", at("2026-06-22T00:00:00Z")) == at(
        "2026-06-28T00:00:00Z"
    )


def test_dst_gap_opening_is_after_the_jump() -> None:
    # Europe/Madrid jumps from 02:00 to 03:00 on 2026-03-29; a 02:30 opening happens at 03:30.
    every_day = parse_days(None)
    start, end = parse_hours("02:30-05:00")
    opens = next_open(every_day, start, end, MADRID, at("2026-03-29T00:30:00+01:00"))
    assert opens == at("2026-03-29T03:30:00+02:00")


def test_next_open_is_never_in_the_past() -> None:
    base = at("2026-01-01T00:00:00Z")
    for hours in range(0, 24 * 8, 5):
        now = base + hours * 3600
        opens = next_open(WEEKDAYS, NINE, EIGHT_PM, MADRID, now)
        assert opens >= now
        local = datetime.datetime.fromtimestamp(opens, ZoneInfo(MADRID))
        assert local.weekday() < 5 and NINE <= local.time() < EIGHT_PM


def test_unknown_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        next_open(WEEKDAYS, NINE, EIGHT_PM, "Mars/Olympus", 0.0)
