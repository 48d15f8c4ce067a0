"""WhatsApp's parameter rules: non-empty, no newline/tab, at most 4 spaces, body ≤ 1024."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.adapters.channels.onemsg.whatsapp import (
    MAX_BODY,
    WhatsAppRuleError,
    check_body,
    clean_param,
    fill,
    variables,
)

BAD = re.compile(r"[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]| {5}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Maria", "Maria", id="plain"),
        pytest.param("  Maria  ", "Maria", id="stripped"),
        pytest.param("a\nb", "a b", id="newline"),
        pytest.param("a \r\n b", "a b", id="crlf-with-spaces"),
        pytest.param("a\tb", "a b", id="tab"),
        pytest.param("a     b", "a b", id="five-spaces"),
        pytest.param("a    b", "a    b", id="four-spaces-kept"),
        pytest.param("line\u2028break", "line break", id="unicode-line-separator"),
        pytest.param("trailing\n", "trailing", id="trailing-newline"),
        pytest.param("a\u00a0b", "a\u00a0b", id="nbsp-kept"),
    ],
)
def test_normalise(value: str, expected: str) -> None:
    assert clean_param(value, "normalise") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("a\nb", "newline or tab", id="newline"),
        pytest.param("a\tb", "newline or tab", id="tab"),
        pytest.param("a     b", "more than 4 consecutive spaces", id="spaces"),
        pytest.param("", "is empty", id="empty"),
        pytest.param("   ", "is empty", id="blank"),
    ],
)
def test_reject(value: str, reason: str) -> None:
    with pytest.raises(WhatsAppRuleError, match=reason):
        clean_param(value, "reject")


@pytest.mark.parametrize("value", ["", " ", "\n\t", "\u2028"])
def test_empty_after_normalising_is_refused(value: str) -> None:
    with pytest.raises(WhatsAppRuleError, match="is empty"):
        clean_param(value, "normalise")


whitespace_heavy = st.text(
    alphabet=st.sampled_from(["a", "b", " ", "\n", "\t", "\r", "\u2028", "\u00a0", "é"]),
    max_size=40,
)


@given(whitespace_heavy)
def test_normalised_parameters_always_pass_the_rule(value: str) -> None:
    try:
        result = clean_param(value, "normalise")
    except WhatsAppRuleError:
        assert not value.strip()
        return
    assert result.strip() and not BAD.search(result)
    assert result == result.strip()
    assert clean_param(result, "normalise") == result  # idempotent
    assert clean_param(result, "reject") == result  # and acceptable as is


@given(whitespace_heavy)
def test_reject_accepts_exactly_what_normalise_leaves_alone(value: str) -> None:
    try:
        accepted = clean_param(value, "reject")
    except WhatsAppRuleError:
        assert BAD.search(value) or not value.strip()
        return
    assert accepted == value
    assert clean_param(value, "normalise") == value.strip()


@given(st.text(max_size=60))
def test_any_text_either_passes_or_says_why(value: str) -> None:
    for mode in ("normalise", "reject"):
        try:
            result = clean_param(value, mode)  # type: ignore[arg-type]
        except WhatsAppRuleError as exc:
            assert str(exc)
        else:
            assert result.strip() and not BAD.search(result)


def test_fill_and_variables() -> None:
    text = 'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>'
    assert variables(text) == [1, 2, 3]
    assert fill(text, ["Maria", "loan", "upload"]) == (
        'Hello, Maria! For your process "loan", the next step is: upload'
    )
    assert fill("<<2>> then <<1>> and <<2>>", ["a", "b"]) == "b then a and b"
    assert fill("no variables", []) == "no variables"
    assert fill("<<1>>", ["<<2>> stays"]) == "<<2>> stays"  # values are not re-read


def test_body_limit() -> None:
    check_body("x" * MAX_BODY)
    with pytest.raises(WhatsAppRuleError, match="1025 characters; WhatsApp accepts at most 1024"):
        check_body("x" * (MAX_BODY + 1))
