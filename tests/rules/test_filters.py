"""Filters for CRM data: date, parse_date and phone, with their edge cases."""

from __future__ import annotations

import datetime

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextstep.engine.errors import RenderError
from nextstep.engine.rules.expressions import compile_template
from nextstep.engine.rules.filters import COUNTRY_VARIABLE, format_date, parse_date
from nextstep.engine.rules.phones import PhoneError, _normalise, normalise_phone

D = datetime.date
DT = datetime.datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-06-20", D(2026, 6, 20), id="iso-date"),
        pytest.param("20260620", D(2026, 6, 20), id="compact"),
        pytest.param("2026-06-20T10:30:00", DT(2026, 6, 20, 10, 30), id="iso-datetime"),
        pytest.param(
            "2026-06-20T10:30:00Z", DT(2026, 6, 20, 10, 30, tzinfo=datetime.UTC), id="iso-zulu"
        ),
        pytest.param("2026-06-20 10:30", DT(2026, 6, 20, 10, 30), id="iso-space"),
        pytest.param("20/06/2026", D(2026, 6, 20), id="day-first-slash"),
        pytest.param("03/07/2026", D(2026, 7, 3), id="ambiguous-is-day-first"),
        pytest.param("06/20/2026", D(2026, 6, 20), id="us-order-when-unambiguous"),
        pytest.param("20.06.2026", D(2026, 6, 20), id="dots"),
        pytest.param("20-06-2026", D(2026, 6, 20), id="dashes"),
        pytest.param("2026/06/20", D(2026, 6, 20), id="year-first-slash"),
        pytest.param("20/06/26", D(2026, 6, 20), id="two-digit-year"),
        pytest.param("20/06/2026 09:05", DT(2026, 6, 20, 9, 5), id="csv-datetime"),
        pytest.param("20/06/2026 9:05:07", DT(2026, 6, 20, 9, 5, 7), id="csv-seconds"),
        pytest.param("20 Jun 2026", D(2026, 6, 20), id="day-month-name"),
        pytest.param("20 June 2026", D(2026, 6, 20), id="day-full-month"),
        pytest.param("Jun 20, 2026", D(2026, 6, 20), id="month-day-year"),
        pytest.param("  2026-06-20  ", D(2026, 6, 20), id="padded"),
        pytest.param("29/02/2028", D(2028, 2, 29), id="leap-day"),
    ],
)
def test_parse_date_forms(text: str, expected: datetime.date) -> None:
    assert parse_date(text) == expected


def test_parse_date_month_first_when_asked() -> None:
    assert parse_date("03/07/2026", dayfirst=False) == D(2026, 3, 7)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "not a date",
        "31/02/2026",
        "29/02/2027",
        "2026-13-01",
        "32/01/2026",
        "20/06/2026 25:00",
        "12345",
    ],
)
def test_parse_date_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="date"):
        parse_date(text)


def test_parse_date_refuses_other_types() -> None:
    for value in (None, 20260620, 1.5, ["2026-06-20"]):
        with pytest.raises(ValueError, match="is not a date"):
            parse_date(value)


def test_parse_date_passes_dates_through() -> None:
    moment = DT(2026, 6, 20, 8, 0)
    assert parse_date(moment) is moment
    assert parse_date(D(2026, 6, 20)) == D(2026, 6, 20)


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        pytest.param("2026-06-05", "%B %-d", "June 5", id="no-pad-day"),
        pytest.param("2026-06-05", "%-d/%-m/%Y", "5/6/2026", id="no-pad-day-month"),
        pytest.param("2026-06-05T07:03:09", "%-H:%M:%-S", "7:03:9", id="no-pad-time"),
        pytest.param("2026-06-05T19:03:00", "%-I %p", "7 PM", id="no-pad-12h"),
        pytest.param("2026-06-05T00:03:00", "%-I", "12", id="midnight-12h"),
        pytest.param("2026-02-01", "%-j", "32", id="day-of-year"),
        pytest.param("2026-06-05", "%d.%m.%Y", "05.06.2026", id="padded"),
        pytest.param("2026-06-05", "%%-d", "%-d", id="escaped-percent"),
        pytest.param("2026-06-05", "%Y-%m-%d", "2026-06-05", id="default-format"),
    ],
)
def test_format_date(value: str, fmt: str, expected: str) -> None:
    assert format_date(value, fmt) == expected


def test_format_date_converts_zones() -> None:
    assert format_date("2026-06-20T08:30:00Z", "%H:%M", tz="Europe/Madrid") == "10:30"
    assert format_date("2026-06-20T08:30:00", "%H:%M", tz="Europe/Madrid") == "10:30"  # naive = UTC
    assert format_date("2026-06-20", "%d", tz="Europe/Madrid") == "20"  # a date has no zone
    with pytest.raises(ValueError, match="unknown time zone"):
        format_date("2026-06-20T08:30:00Z", "%H", tz="Mars/Olympus")


def render(source: str, event: dict[str, object], country: str | None = "ES") -> str:
    template = compile_template(source, rule_id="r", field="f")
    return template.render({"event": event, COUNTRY_VARIABLE: country})


def test_date_filter_in_a_template_and_its_errors() -> None:
    assert render("{{ event.d | date('%B %-d') }}", {"d": "2026-06-20"}) == "June 20"
    with pytest.raises(RenderError, match="rule r: f: '2026-02-30' is not a date"):
        render("{{ event.d | date('%B') }}", {"d": "2026-02-30"})
    with pytest.raises(RenderError, match="'event.d' is undefined"):
        render("{{ event.d | date('%B') }}", {})
    with pytest.raises(RenderError, match="an empty value is not a date"):
        render("{{ event.d | date('%B') }}", {"d": ""})


def test_parse_date_filter_compares() -> None:
    source = "{{ (event.d | parse_date) > (event.e | parse_date) }}"
    assert render(source, {"d": "21/06/2026", "e": "2026-06-20"}) == "True"


def test_phone_filter_uses_default_country_and_argument() -> None:
    assert render("{{ event.p | phone }}", {"p": "600 111 222"}) == "34600111222"
    assert render("{{ event.p | phone('GB') }}", {"p": "07700 900123"}) == "447700900123"
    assert render("{{ event.p | phone }}", {"p": 34600111222}) == "34600111222"
    with pytest.raises(RenderError, match="not a possible phone number"):
        render("{{ event.p | phone }}", {"p": "12"})
    with pytest.raises(RenderError, match="'event.p' is undefined"):
        render("{{ event.p | phone }}", {})


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        pytest.param("+34 600 111 222", "ES", "34600111222", id="international-spaces"),
        pytest.param("+34-600-111-222", None, "34600111222", id="dashes-no-country"),
        pytest.param("0034 600111222", "ES", "34600111222", id="double-zero"),
        pytest.param("(+34) 600.111.222", "ES", "34600111222", id="parentheses-dots"),
        pytest.param("600111222", "ES", "34600111222", id="national"),
        pytest.param("34600111222", "ES", "34600111222", id="international-without-plus"),
        pytest.param("07700 900123", "GB", "447700900123", id="gb-trunk-zero"),
        pytest.param("+44 (0)7700 900123", "ES", "447700900123", id="gb-bracketed-zero"),
        pytest.param("+39 06 1234 5678", "ES", "390612345678", id="italian-leading-zero"),
        pytest.param("(212) 555-0100", "US", "12125550100", id="us-national"),
        pytest.param("+1 212 555 0100", "ES", "12125550100", id="us-international"),
        pytest.param("8 912 345 6789", "RU", "79123456789", id="ru-trunk-eight"),
        pytest.param("\u00a0+34\u00a0600\u00a0111\u00a0222 ", "ES", "34600111222", id="nbsp"),
    ],
)
def test_normalise_phone(raw: str, country: str | None, expected: str) -> None:
    assert normalise_phone(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "reason"),
    [
        pytest.param("", "ES", "empty", id="empty"),
        pytest.param("   ", "ES", "empty", id="blank"),
        pytest.param("12", "ES", "too short", id="too-short"),
        pytest.param("+34 600 111 222 333 444", "ES", "too long", id="too-long"),
        pytest.param("0600111222", None, "no country code", id="no-country"),
        pytest.param("call me", "ES", "is not a phone number", id="words"),
        pytest.param("+999 123456", "ES", "phone number", id="unknown-country-code"),
        pytest.param("555 0100", "US", "local number", id="local-only"),
        pytest.param("+34 600 111 22x", "ES", "is not a phone number", id="letter"),
    ],
)
def test_normalise_phone_refuses_with_reason(raw: str, country: str | None, reason: str) -> None:
    with pytest.raises(PhoneError, match=reason):
        normalise_phone(raw, country)


REGIONS = ["ES", "GB", "US", "DE", "IT", "RU", "AR", "BR", "IN", "MX", "FR", "AU", None]


@settings(max_examples=400, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=0, max_size=17),
    prefix=st.sampled_from(["", "+", "00", "0", "+0"]),
    region=st.sampled_from(REGIONS),
)
def test_fast_path_agrees_with_phonenumbers(digits: str, prefix: str, region: str | None) -> None:
    raw = prefix + digits
    outcomes = []
    for fast in (True, False):
        try:
            outcomes.append(_normalise(raw, region, fast=fast))
        except PhoneError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=4, max_size=16),
    region=st.sampled_from(REGIONS),
    noise=st.sampled_from(["", " ", "-", ".", "  "]),
)
def test_normalised_phone_is_international_digits_and_stable(
    digits: str, region: str | None, noise: str
) -> None:
    raw = noise.join(digits[i : i + 3] for i in range(0, len(digits), 3))
    try:
        result = normalise_phone(raw, region)
    except PhoneError:
        return
    assert result.isdigit() and 6 <= len(result) <= 15
    # the result is a possible number, and reading it again gives itself
    assert phonenumbers.is_possible_number(phonenumbers.parse("+" + result))
    assert normalise_phone("+" + result, None) == result
    assert normalise_phone("+" + result, region) == result


def test_fast_path_agrees_on_every_region_example_number() -> None:
    formats = (
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
    )
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for fmt in formats:
                raw = phonenumbers.format_number(number, fmt)
                results = []
                for fast in (True, False):
                    try:
                        results.append(_normalise(raw, region, fast=fast))
                    except PhoneError:
                        results.append(None)
                assert results[0] == results[1], (region, raw)
                checked += 1
    assert checked > 1000
