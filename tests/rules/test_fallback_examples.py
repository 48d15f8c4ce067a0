"""Fallbacks previewed, expected and checked offline (issue 12.12), and one event offered to
every rule (issue 12.13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nextstep.engine.commands.cli import main
from nextstep.engine.rules.examples import sample_failure
from tests.rules.helpers import write_config

RULE = """\
  - id: r
    trigger: {http: {path: /events/r}}
    when: event.stage == "docs"
    to: "{{ event.phone }}"
    send: {channel: crm, body: {case: "{{ event.case }}"}}
    policy:
      fallback:
        - on: [expired]
          send: {channel: mail, to: "{{ event.email }}", subject: "Case {{ event.case }}", body: b}
        - on: [failed, template]
          send: {channel: crm, body: {why: "{{ failure.reason }}", class: "{{ failure.class }}"}}
    examples:
      - event: {stage: docs, phone: "+34600111222", case: C-1}
        expect: {body: {case: C-1}}
      - event: {stage: other, phone: "+34600111222", case: C-2}
        expect: skip
"""


def run(config: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "-c", str(config)], input=stdin)


def test_validate_renders_every_fallback_for_every_matching_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a fallback without `event.email` was found at run time, as a buried note."""
    monkeypatch.chdir(tmp_path)
    result = run(write_config(tmp_path, RULE), "validate")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "rules/rules.yaml:14:7: rule r: examples[0]: policy.fallback[0].send.to cannot render "
        "for this example's event: 'event.email' is undefined (event has: case, phone, stage)"
    ]
    fixed = RULE.replace("case: C-1}\n", "case: C-1, email: a@example.com}\n", 1)
    assert run(write_config(tmp_path, fixed), "validate").exit_code == 0


def test_an_expected_fallback_error_is_not_a_problem(tmp_path: Path) -> None:
    expected = RULE.replace(
        "expect: {body: {case: C-1}}",
        "expect: {body: {case: C-1}, fallback: {0: {error: \"'event.email' is undefined\"}}}",
    )
    config = write_config(tmp_path, expected)
    assert run(config, "validate").exit_code == 0
    assert run(config, "test").output.splitlines()[-1] == "2 passed, 0 failed"


def test_examples_state_each_fallback_step(tmp_path: Path) -> None:
    steps = RULE.replace(
        "case: C-1}\n        expect: {body: {case: C-1}}",
        "case: C-1, email: a@example.com}\n"
        "        expect:\n"
        "          fallback:\n"
        "            0: {to: a@example.com, subject: Case C-1}\n"
        "            1: {body: {why: 'sample: the template was refused', class: template}}",
    )
    config = write_config(tmp_path, steps)
    assert run(config, "test").output.splitlines()[-1] == "2 passed, 0 failed"

    wrong = steps.replace("subject: Case C-1", "subject: Case C-9")
    wrong = wrong.replace(
        "- event: {stage: docs", "- failure: {reason: gone}\n        event: {stage: docs"
    )
    result = run(write_config(tmp_path, wrong), "test")
    assert result.exit_code == 1
    assert (
        "examples[0]: fallback[0].subject: expected 'Case C-9', got 'Case C-1'; "
        "fallback[1].body: expected "
        '{"why": "sample: the template was refused", "class": "template"}, '
        'got {"why": "gone", "class": "template"}'
    ) in result.output


def test_an_expected_step_the_rule_does_not_have(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, RULE.replace("expect: {body: {case: C-1}}", "expect: {fallback: {5: {body: x}}}")
    )
    assert "the rule has no fallback step 5 (it has steps 0 to 1)" in run(config, "validate").output


def test_render_previews_every_fallback(tmp_path: Path) -> None:
    config = write_config(tmp_path, RULE.replace("case: C-1}", "case: C-1, email: a@b.c}"))
    event = '{"stage": "docs", "phone": "+34600111222", "case": "C-3", "email": "x@example.com"}'
    result = run(config, "render", "r", "--event", "-", stdin=event)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "fallback:  policy.fallback[0] on expired (sample failure: expired: "
        "sample: no delivered status in time)"
    ) in lines
    assert "  recipient: x@example.com" in lines
    assert (
        "fallback:  policy.fallback[1] on failed, template (sample failure: failed, template: "
        "sample: the template was refused)"
    ) in lines
    doc = json.loads(run(config, "render", "r", "--event", "-", "--json", stdin=event).output)
    assert [step["payload"] for step in doc["fallbacks"]][1] == {
        "why": "sample: the template was refused",
        "class": "template",
    }
    no_email = event.replace(', "email": "x@example.com"', "")
    shown = run(config, "render", "r", "--event", "-", stdin=no_email).output
    assert (
        "fallback:  policy.fallback[0] on expired: cannot render (policy.fallback[0].send.to"
        in (shown)
    )


def test_render_all_offers_the_event_to_every_rule(tmp_path: Path) -> None:
    other = """\
  - id: s
    trigger: {http: {path: /events/s}}
    when: event.stage == "other"
    send: {channel: crm, body: {x: 1}}
"""
    config = write_config(tmp_path, RULE.replace("case: C-1}", "case: C-1, email: a@b.c}") + other)
    event = '{"stage": "docs", "phone": "+34600111222", "case": "C-3"}'
    result = run(config, "render", "--all", "--event", "-", stdin=event)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "r  matches  → 34600111222 via crm (webhook), 2 fallbacks",
        's  no       when is false: event.stage == "other"',
        "1 of 2 rules matches",
    ]
    doc = json.loads(run(config, "render", "--all", "--event", "-", "--json", stdin=event).output)
    assert [(d["rule"], d["matches"]) for d in doc] == [("r", True), ("s", False)]
    assert run(config, "render", "--event", "-", stdin=event).exit_code == 2
    assert run(config, "render", "r", "--all", "--event", "-", stdin=event).exit_code == 2


@pytest.mark.parametrize(
    ("on", "status", "kind"),
    [
        pytest.param({"expired"}, "expired", None, id="expired"),
        pytest.param({"failed"}, "failed", "recipient", id="failed"),
        pytest.param({"failed", "expired"}, "failed", "recipient", id="both"),
        pytest.param({"template", "failed"}, "failed", "template", id="class"),
    ],
)
def test_the_sample_failure_fits_the_step(on: set[str], status: str, kind: str | None) -> None:
    failure = sample_failure(frozenset(on))
    assert (failure["status"], failure["class"], failure["attempts"]) == (status, kind, 1)
    assert failure["reason"].startswith("sample: ")
    assert sample_failure(frozenset(on), {"reason": "x"})["reason"] == "x"
