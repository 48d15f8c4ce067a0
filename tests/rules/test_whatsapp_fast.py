"""The quick checks of WhatsApp's rules agree with the plain regular-expression reading."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextstep.adapters.channels.onemsg.whatsapp import _BAD, WhatsAppRuleError, clean_param, fill
from nextstep.engine.rules.phones import PhoneError, _normalise, normalise_phone

_WHITE_RUN = re.compile(r"\s+")
_OLD_NOISE = re.compile(r"[\s\-().\u00a0/]")


def _reference_clean(value: str, mode: str) -> str:
    """clean_param as the rule reads, with the regular expression run on every value."""
    controls = "".join(c for c in value if unicodedata.category(c) == "Cc" and not _BAD.match(c))
    if mode == "normalise":
        value = "".join(c for c in value if c not in controls)
        if _BAD.search(value):
            value = _WHITE_RUN.sub(lambda m: " " if _BAD.search(m.group(0)) else m.group(0), value)
        value = value.strip()
        if value:
            return value
    elif controls or _BAD.search(value):
        raise WhatsAppRuleError("refused")
    if not value.strip():
        raise WhatsAppRuleError("empty")
    return value


_text = st.text(
    alphabet=st.sampled_from(list("ab ñ\t\n\r\x0b\x0c\x1c\x85\u2028\u2029\u00a0\u200b\x00é")),
    max_size=12,
) | st.text(max_size=12)


@settings(max_examples=500)
@given(value=_text, mode=st.sampled_from(["normalise", "reject"]))
def test_clean_param_agrees_with_the_regular_expression(value: str, mode: str) -> None:
    outcomes = []
    for clean in (clean_param, _reference_clean):
        try:
            outcomes.append(clean(value, mode))  # type: ignore[operator]
        except WhatsAppRuleError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        pytest.param("100% <<1>> {x} %s", ["a%sb"], "100% a%sb {x} %s", id="percent-braces"),
        pytest.param("<<2>>, <<1>>", ["a", "b"], "b, a", id="reordered"),
        pytest.param("<<1>> only", ["a", "unused"], "a only", id="extra-param"),
        pytest.param("<<1>><<1>>", ["x"], "xx", id="repeated"),
    ],
)
def test_fill(text: str, params: list[str], expected: str) -> None:
    assert fill(text, params) == expected


def test_fill_without_a_value_for_a_variable_fails() -> None:
    with pytest.raises(IndexError):
        fill("<<1>> <<3>>", ["a", "b"])


_separators = st.sampled_from([" ", "-", ".", "(", ")", "/", "\u00a0", "\u2009", "\t", "\u3000"])


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.text(alphabet="0123456789", min_size=1, max_size=4), min_size=1, max_size=5),
    separators=st.lists(_separators, min_size=5, max_size=5),
    prefix=st.sampled_from(["", "+", "00", " +"]),
    region=st.sampled_from(["ES", "GB", "US", None]),
)
def test_phone_separators_are_removed_like_the_regular_expression(
    parts: list[str], separators: list[str], prefix: str, region: str | None
) -> None:
    raw = prefix + "".join(p + s for p, s in zip(parts, separators, strict=False))
    outcomes = []
    for text in (raw, _OLD_NOISE.sub("", raw.strip())):
        try:
            outcomes.append(_normalise(text, region, fast=True))
        except PhoneError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        pytest.param("200000000000", "ES", id="egypt-zeros"),
        pytest.param("+20 0 0000 0000", None, id="egypt-national-prefix"),
        pytest.param("+44 (0)20 7946 0958", None, id="uk-trunk-zero"),
    ],
)
def test_a_normalised_number_reads_back_as_itself(raw: str, region: str | None) -> None:
    result = normalise_phone(raw, region)
    assert normalise_phone("+" + result, None) == result
