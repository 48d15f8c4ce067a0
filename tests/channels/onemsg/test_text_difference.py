"""`templates --check` shows how a rule's text differs from the approved body, word by word
(issue 12.14: it said "text differs" without the difference)."""

from __future__ import annotations

import pytest

from nextstep.adapters.channels.onemsg.checks import check_send, text_difference
from nextstep.adapters.channels.onemsg.templates import parse_templates


@pytest.mark.parametrize(
    ("rule", "body", "shown"),
    [
        pytest.param("Hi <<1>>,  welcome", "Hi {{1}}, welcome", None, id="same"),
        pytest.param(
            "Hello <<1>>, the next step is: <<2>> If you need help — we are here.",
            "Hello {{1}}, the next step is: {{2}}. If you need any help, we are here.",
            "… next step is: [-{{2}}.-] {+{{2}}+} If you need [-any help,-] {+help —+} we are "
            "here.",
            id="two-changes",
        ),
        pytest.param(
            "a b c d e f g h i j k l m",
            "a b c d e X g h i j k l m",
            "… c d e [-X-] {+f+} g h i …",
            id="context",
        ),
        pytest.param(
            "Hola <<1>>", "Hi {{1}}, welcome", "[-Hi {{1}}, welcome-] {+Hola {{1}}+}", id="all"
        ),
    ],
)
def test_word_level_difference(rule: str, body: str, shown: str | None) -> None:
    assert text_difference(rule, body) == shown


def test_the_check_notes_the_difference(tmp_path: object) -> None:
    from tests.rules.helpers import one_rule

    rule = one_rule(
        tmp_path,  # type: ignore[arg-type]
        """\
        trigger: {csv: {path: "in/*.csv"}}
        to: "{{ event.phone }}"
        send:
          channel: whatsapp
          template: next_step_short
          namespace: ns
          language: en
          text: "<<1>>, your next step: <<2>>"
          params: {1: a, 2: b}
        """,
    )
    [template] = parse_templates(
        [
            {
                "name": "next_step_short",
                "language": "en",
                "namespace": "ns",
                "status": "approved",
                "components": [{"type": "BODY", "text": "{{1}}, your next steps: {{2}}"}],
            }
        ]
    )
    found = check_send(rule.send.compiled, [template])
    assert found is not None and found.errors == ()
    assert found.notes == (
        "the rule's text differs from the approved body (previews will differ): "
        "{{1}}, your next [-steps:-] {+step:+} {{2}}",
    )
