"""Control characters (NUL, ESC, DEL, C1…) never reach WhatsApp parameters: ``normalise``
deletes them, ``reject`` refuses the event; line breaks and tabs keep the whitespace rule."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.adapters.channels.onemsg.channel import preflight
from nextstep.adapters.channels.onemsg.whatsapp import (
    WhatsAppRuleError,
    clean_param,
    control_character,
    variable_problems,
)
from nextstep.engine.errors import ConfigError, RenderError
from nextstep.engine.ledger.base import NewNotification
from nextstep.engine.model import Event, Message
from nextstep.engine.rules.render import evaluate
from tests.rules.helpers import WHATSAPP_SEND, load, one_rule

CONTROLS = [chr(c) for c in range(0x110) if unicodedata.category(chr(c)) == "Cc"]
BREAKS = set("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85")
OTHERS = [c for c in CONTROLS if c not in BREAKS]
NOW = 1_781_690_400.0


def test_the_controls_are_every_cc_character_but_the_breaks() -> None:
    assert len(OTHERS) == 65 - len(BREAKS)
    assert all(control_character(f"a{c}b") == f"U+{ord(c):04X}" for c in OTHERS)
    assert all(control_character(f"a{c}b") is None for c in BREAKS)
    assert control_character("plain, ñ, \u00a0, \u200b") is None


@pytest.mark.parametrize("control", OTHERS, ids=lambda c: f"U+{ord(c):04X}")
def test_normalise_deletes_and_reject_refuses(control: str) -> None:
    assert clean_param(f"Ma{control}ria", "normalise") == "Maria"
    with pytest.raises(WhatsAppRuleError, match=f"control character U\\+{ord(control):04X}"):
        clean_param(f"Ma{control}ria", "reject")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("\x00Ana\x00", "Ana", id="ends"),
        pytest.param("a \x00    b", "a b", id="deleting-makes-five-spaces"),
        pytest.param("a\x00\nb", "a b", id="beside-a-newline"),
        pytest.param("\x1b[1mbold\x1b[0m", "[1mbold[0m", id="ansi-escape"),
    ],
)
def test_normalise_deletes_before_the_whitespace_rule(value: str, expected: str) -> None:
    assert clean_param(value, "normalise") == expected


@pytest.mark.parametrize("mode", ["normalise", "reject"])
def test_only_controls_is_empty_or_refused(mode: str) -> None:
    with pytest.raises(WhatsAppRuleError):
        clean_param("\x00\x07", mode)  # type: ignore[arg-type]


@given(
    st.text(alphabet=st.sampled_from(["a", " ", "\n", "\x00", "\x7f", "\x9b", "é"]), max_size=30)
)
def test_no_control_survives_normalise(value: str) -> None:
    try:
        result = clean_param(value, "normalise")
    except WhatsAppRuleError:
        return
    assert not any(unicodedata.category(c) == "Cc" for c in result)
    assert clean_param(result, "reject") == result


HEAD = """\
    trigger: {http: {path: /events/e}}
    to: "{{ event.phone }}"
"""


def test_rules_apply_it_per_event(tmp_path: Path) -> None:
    event = Event({"first_name": "ma\x00ria", "due_date": "2026-06-20", "phone": "+34600111222"})
    normalised = one_rule(tmp_path, HEAD + WHATSAPP_SEND)
    found = evaluate(normalised, event, now=NOW, default_country="ES")
    assert isinstance(found, NewNotification)
    assert found.fields["params"][0] == "Maria"
    rejecting = one_rule(tmp_path, HEAD + "    whitespace: reject\n" + WHATSAPP_SEND)
    with pytest.raises(RenderError, match="send.params.1: .* control character U\\+0000"):
        evaluate(rejecting, event, now=NOW, default_country="ES")


def test_the_approved_text_may_not_hold_one() -> None:
    assert variable_problems("Hi <<1>>\x00", {1}) == [
        (None, "the text contains the control character U+0000")
    ]
    assert variable_problems("Hi <<1>>,\nbye", {1}) == []


def test_a_rule_text_with_one_is_not_loaded(tmp_path: Path) -> None:
    rules = (
        '  - id: r\n    trigger: {http: {path: /events/e}}\n    to: "{{ event.phone }}"\n'
        "    send: {channel: whatsapp, template: t, namespace: n, language: en,\n"
        '           text: "Hi <<1>>\\0", params: {1: "{{ event.name }}"}}\n'
    )
    with pytest.raises(ConfigError, match="control character U\\+0000"):
        load(tmp_path, rules)


def test_preflight_refuses_a_message_holding_one() -> None:
    message = Message("whatsapp", "34600111222", {"params": ["Ana", "b\x00"], "text": "x"})
    assert preflight(message) == "parameter 2 has the control character U+0000"
