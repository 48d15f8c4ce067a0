"""Unknown Jinja filters and tests are problems at their place, for every command (issue 12.1).

Before, Jinja's compiler raised ``TemplateAssertionError: No filter named 'titel'`` out of
``load_config``: every command ended in a traceback and the daemon's reload log had no place.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nextstep.engine.commands.cli import main
from nextstep.engine.errors import ConfigError
from nextstep.engine.rules.config import load_config
from nextstep.engine.rules.expressions import TemplateProblem, compile_expression, compile_template
from tests.rules.helpers import write_config

RULES = """\
  - id: r
    trigger: {csv: {path: "in/*.csv"}}
    when: event.stage is not defind
    to: "{{ event.phone | phon }}"
    send:
      channel: whatsapp
      template: t
      namespace: ns
      language: en
      text: "Hi <<1>>"
      params: {1: "{{ event.name | titel }}"}
    policy:
      fallback:
        - on: [failed]
          send: {channel: crm, body: {x: "{{ failure.reason | uper }}"}}
"""
EXPECTED = [
    "rules/rules.yaml:4:9: rule r: when: unknown test 'defind'; did you mean 'defined'?",
    "rules/rules.yaml:5:7: rule r: to: unknown filter 'phon'; did you mean 'phone'?",
    "rules/rules.yaml:12:17: rule r: send.params.1: unknown filter 'titel'; did you mean 'title'?",
    "rules/rules.yaml:16:40: rule r: policy.fallback[0].send.body.x: unknown filter 'uper'; "
    "did you mean 'upper'?",
]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["validate"], id="validate"),
        pytest.param(["test"], id="test"),
        pytest.param(["render", "r", "--event", "-"], id="render"),
    ],
)
def test_every_command_reports_every_unknown_filter_at_its_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    config = write_config(tmp_path, RULES)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*command, "-c", str(config)], input="{}")
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert result.stdout.splitlines() == EXPECTED
    assert "4 problems found" in result.output


def test_the_reload_gets_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, RULES), env={})
    assert [p.path for p in caught.value.problems] == [
        "when",
        "to",
        "send.params.1",
        "policy.fallback[0].send.body.x",
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            "{{ x | titel }}", "unknown filter 'titel'; did you mean 'title'?", id="filter"
        ),
        pytest.param(
            "{% filter uper %}x{% endfilter %}",
            "unknown filter 'uper'; did you mean 'upper'?",
            id="filter-block",
        ),
        pytest.param(
            "{% if x is defind %}{% endif %}",
            "unknown test 'defind'; did you mean 'defined'?",
            id="test",
        ),
        pytest.param(
            "{{ x | a1 | b2 }}",
            "unknown filter 'a1' (docs/rules.md lists the filters); unknown filter 'b2'",
            id="several",
        ),
        pytest.param("{{ x | _private }}", "unknown filter '_private'", id="private"),
    ],
)
def test_templates_name_the_unknown_filter(source: str, message: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        compile_template(source, rule_id="r", field="f", names=None)
    assert message in str(caught.value)


def test_expressions_name_the_unknown_test() -> None:
    with pytest.raises(TemplateProblem, match="unknown test 'evn'; did you mean 'even'"):
        compile_expression("event.n is evn", rule_id="r", field="when")
