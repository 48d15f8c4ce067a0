"""The commands: validate, render, test, schema (exit codes 0 ok, 1 invalid, 2 usage)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from nextstep.engine.commands.cli import main
from nextstep.engine.rules.yamlload import load_text
from tests.rules.helpers import WHATSAPP_SEND, write_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "nextstep.yaml")
SEED_EVENT = json.dumps(
    {
        "first_name": "maria",
        "application_id": 12345,
        "stage": "docs_required",
        "due_date": "2026-06-20",
        "phone": "+34 600 111 222",
    }
)
SEED_TEXT = (
    'Hello, Maria! For your process "loan application", the next step is: upload documents in '
    "your account by June 20 If you need help — we are here."
)


def run(*args: str, stdin: str | None = None, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env=env)


@pytest.mark.parametrize("command", ["validate", "render", "test", "schema"])
def test_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Usage: main " + command in result.output or f"{command} [OPTIONS]" in result.output


def test_validate_demo_and_every_example_rule_file() -> None:
    result = run("validate", "-c", DEMO)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 3 rules in 3 files")


def test_test_runs_every_demo_example() -> None:
    result = run("test", "-c", DEMO)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "10 passed, 0 failed"


def test_config_from_environment_variable() -> None:
    result = run("validate", env={"NEXTSTEP_CONFIG": DEMO})
    assert result.exit_code == 0, result.output


def test_missing_config_is_invalid_input(tmp_path: Path) -> None:
    result = run("validate", "-c", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert "nope.yaml:1:1: cannot read" in result.output


def test_unknown_command_and_option_are_usage_errors() -> None:
    assert run("nope").exit_code == 2
    assert run("validate", "--bogus").exit_code == 2


def test_render_seed_example() -> None:
    result = run("render", "loan-docs-required", "--event", "-", "-c", DEMO, stdin=SEED_EVENT)
    assert result.exit_code == 0, result.output
    assert "matches:   yes" in result.output
    assert "recipient: 34600111222" in result.output
    assert f"text:      {SEED_TEXT}" in result.output
    assert "POST http://127.0.0.1:8790/demo/sendTemplate" in result.output
    start = result.output.index("\n{")
    payload = json.loads(result.output[start : result.output.index("\n}", start) + 2])
    assert payload["language"] == {"policy": "deterministic", "code": "en"}
    [component] = payload["params"]
    assert [p["text"] for p in component["parameters"]] == [
        "Maria",
        "loan application",
        "upload documents in your account by June 20",
    ]
    assert "demo-token" not in result.output


def test_render_json_and_from_a_file(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(SEED_EVENT)
    result = run("render", "loan-docs-required", "--event", str(event), "--json", "-c", DEMO)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["matches"] is True and report["text"] == SEED_TEXT
    assert report["payload"]["phone"] == "34600111222"
    assert report["dedupe_key"] == "12345:docs_required"


def test_render_yaml_event_and_trigger(tmp_path: Path) -> None:
    event = "first_name: ana\napplication_id: 1\nstage: approved\nphone: '600111222'\n"
    result = run("render", "loan-docs-required", "--event", "-", "-c", DEMO, stdin=event)
    assert result.exit_code == 0, result.output
    assert 'matches:   no (when is false: event.stage == "docs_required")' in result.output


def test_render_never_prints_secrets(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "  - id: r\n    trigger: {http: {path: /events/r}}\n    to: '{{ event.phone }}'\n"
        + WHATSAPP_SEND,
    )
    text = config.read_text().replace(
        'base_url: "http://127.0.0.1:9"', 'base_url: "http://user:pw@127.0.0.1:9"'
    )
    config.write_text(text)
    result = run("render", "r", "--event", "-", "-c", str(config), stdin=SEED_EVENT)
    assert result.exit_code == 0, result.output
    assert "secret-token" not in result.output and "pw" not in result.output
    assert "POST http://127.0.0.1:9/inst/sendTemplate" in result.output


def test_render_errors() -> None:
    bad = json.dumps(
        {"first_name": "maria", "stage": "docs_required", "phone": "12", "application_id": 1}
    )
    result = run("render", "loan-docs-required", "--event", "-", "-c", DEMO, stdin=bad)
    assert result.exit_code == 1
    assert (
        "error: rule loan-docs-required: to: '12' is not a possible phone number" in result.output
    )

    unknown = run("render", "loan-docs", "--event", "-", "-c", DEMO, stdin="{}")
    assert unknown.exit_code == 2
    assert "did you mean 'loan-docs-required'?" in unknown.output

    not_an_object = run("render", "loan-docs-required", "--event", "-", "-c", DEMO, stdin="[1, 2]")
    assert not_an_object.exit_code == 2
    assert "must be a JSON object" in not_an_object.output

    missing = run("render", "loan-docs-required", "-c", DEMO)
    assert missing.exit_code == 2


def test_render_now_drives_the_send_window() -> None:
    event = json.dumps(
        {
            "appointment_id": 1,
            "status": "confirmed",
            "name": "Eva",
            "phone": "+34611000001",
            "starts_at": "2026-06-23T09:00:00Z",
        }
    )
    result = run(
        "render",
        "appointment-confirmed",
        "--event",
        "-",
        "--now",
        "2026-06-20T21:00:00Z",
        "--json",
        "-c",
        DEMO,
        stdin=event,
    )
    report = json.loads(result.output)
    assert report["not_before"] == "2026-06-22T07:00:00+00:00"  # Monday 09:00 in Madrid
    assert (
        run(
            "render",
            "appointment-confirmed",
            "--event",
            "-",
            "--now",
            "soon",
            "-c",
            DEMO,
            stdin=event,
        ).exit_code
        == 2
    )


FAILING_EXAMPLES = """\
  - id: r
    trigger: {http: {path: /events/r}}
    when: event.stage == "go"
    to: "{{ event.phone }}"
    send: {channel: whatsapp, template: t, namespace: ns, language: en,
           text: "Hi <<1>>, welcome to our service for clients of every kind and size",
           params: {1: "{{ event.name | title }}"}}
    examples:
      - event: {stage: go, name: ana, phone: "+34600111222"}
        expect: {to: "34600111222", params: [Ana]}
      - event: {stage: go, name: ana, phone: "+34600111222"}
        expect: {text: "Hi Ann, welcome to our service for clients of every kind and size"}
      - event: {stage: go, name: ana, phone: "+34600111222"}
        expect: skip
      - event: {stage: stop, name: ana, phone: "+34600111222"}
        expect: {to: "34600111222"}
      - event: {stage: go, phone: "+34600111222"}
        expect: {error: "'event.name' is undefined"}
      - event: {stage: go, phone: "+34600111222"}
        expect: {to: "1"}
  - id: other
    trigger: {http: {path: /events/r}}
    send: {channel: crm, body: {a: "{{ event.a }}"}}
    examples:
      - event: {a: 1}
        expect: {body: {a: "1"}}
"""


def test_test_reports_each_failing_example(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAILING_EXAMPLES)
    result = run("test", "-c", str(config))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == "3 passed, 4 failed"
    failures = [line for line in lines if line.startswith("FAIL ")]
    assert len(failures) == 4
    assert "examples[1]: text: differs at character 6: expected 'Hi Ann, welcome" in failures[0]
    assert "examples[2]: expected skip, but the rule matches (to 34600111222)" in failures[1]
    assert "examples[3]: expected a message, but skipped: when is false" in failures[2]
    assert "examples[5]: render error: send.params.1: 'event.name' is undefined" in failures[3]
    assert all(":rules.yaml:" not in f and "rules/rules.yaml:" in f for f in failures)


def test_test_selected_rules(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAILING_EXAMPLES)
    result = run("test", "other", "-v", "-c", str(config))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("ok   ")
    assert lines[0].endswith("rules.yaml:26: rule other: examples[0]")
    assert lines[1] == "1 passed, 0 failed"
    assert run("test", "nope", "-c", str(config)).exit_code == 2


def test_schema_is_a_valid_schema_that_accepts_the_demo_files(tmp_path: Path) -> None:
    result = run("schema")
    assert result.exit_code == 0
    rules_schema = json.loads(result.output)
    Draft202012Validator.check_schema(rules_schema)
    assert rules_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = Draft202012Validator(rules_schema)
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        data = load_text(path.read_text(), str(path), {}).data  # YAML 1.2, as editors read it
        assert list(validator.iter_errors(data)) == [], path
    assert list(validator.iter_errors({"rules": [{"id": "x"}]}))  # it does check

    out = tmp_path / "config.schema.json"
    assert run("schema", "config", "-o", str(out)).exit_code == 0
    config_schema = json.loads(out.read_text())
    Draft202012Validator.check_schema(config_schema)
    demo = load_text((ROOT / "nextstep.yaml").read_text(), "nextstep.yaml", {}).data
    assert list(Draft202012Validator(config_schema).iter_errors(demo)) == []
    assert run("schema", "other").exit_code == 2


def test_the_printed_schemas_accept_the_repository_files_as_written(tmp_path: Path) -> None:
    """Issue 12.5: an editor validates the file before `${VAR:-default}` is replaced; the
    recommended `port: ${SMTP_PORT:-8025}` and `url: ${CRM_WEBHOOK_URL:-http://…}` are valid
    wherever a value may be, and the schemas still check (a number where text must be)."""
    schemas = {}
    for kind in ("rules", "config"):
        out = tmp_path / f"{kind}.schema.json"
        assert run("schema", kind, "-o", str(out)).exit_code == 0
        schemas[kind] = Draft202012Validator(json.loads(out.read_text(encoding="utf-8")))
    files = [("config", ROOT / "nextstep.yaml")]
    files += [("rules", p) for p in sorted((ROOT / "rules").glob("*.yaml"))]
    for kind, path in files:
        raw = load_text(path.read_text(encoding="utf-8"), str(path), None).data  # ${…} kept
        assert [e.message for e in schemas[kind].iter_errors(raw)] == [], path
    assert "${" in (ROOT / "nextstep.yaml").read_text(encoding="utf-8")
    bad = {"channels": {"mail": {"type": "smtp", "host": "h", "port": "eighty", "from": "a@b"}}}
    assert list(schemas["config"].iter_errors(bad))
    interpolated = {"channels": {"mail": {"type": "smtp", "host": "h", "port": "${P:-25}"}}}
    assert [e.message for e in schemas["config"].iter_errors(interpolated)] == [
        "'from' is a required property"
    ]


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        pytest.param(
            ["render", "nope", "--event", "-"], "Usage: main render [OPTIONS] [RULE]", id="rule"
        ),
        pytest.param(["test", "nope"], "Usage: main test [OPTIONS] [RULE]...", id="test"),
        pytest.param(
            ["render", "loan-docs-required", "--event", "/nonexistent"],
            "Usage: main render",
            id="event",
        ),
    ],
)
def test_a_usage_error_shows_the_command_s_usage(args: list[str], usage: str) -> None:
    """Issue 12.9: the top-level usage was printed for a mistake in a command's arguments."""
    result = run(*args, "-c", DEMO, stdin="{}")
    assert result.exit_code == 2, result.output
    assert usage in result.output, result.output
    assert "COMMAND [ARGS]" not in result.output
    assert f"Try 'main {args[0]} --help' for help." in result.output


def test_counts_are_pluralised(tmp_path: Path) -> None:
    """Issue 12.9: "1 rules"."""
    from nextstep.engine.plural import plural

    config = write_config(
        tmp_path,
        "  - id: r\n    trigger: {csv: {path: 'in/*.csv'}}\n"
        "    send: {channel: crm, body: {x: 1}}\n",
    )
    result = run("validate", "-c", str(config))
    assert result.output == "ok: 1 rule in 1 file, 3 channels\n"
    assert [plural(n, "rule") for n in (0, 1, 2, 1500)] == [
        "0 rules",
        "1 rule",
        "2 rules",
        "1,500 rules",
    ]
    bad = write_config(tmp_path, "  - id: r\n    trigger: {csv: {path: 'in/*.csv'}}\n")
    assert "1 problem found" in run("validate", "-c", str(bad)).output


def test_readme_says_which_commands_take_a_config() -> None:
    """Issue 12.9: README said every command has -c/--config; schema, sandbox, demo do not."""
    from nextstep.engine.commands.cli import main as cli

    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    def takes_config(command: click.Command) -> bool:
        # A group (optout) takes it on each of its subcommands.
        if isinstance(command, click.Group):
            return all(takes_config(sub) for sub in command.commands.values())
        return any("--config" in p.opts for p in command.params)

    without = sorted(
        name
        for name, command in cli.commands.items()  # type: ignore[attr-defined]
        if not takes_config(command)
    )
    assert without == ["console", "demo", "ledger", "sandbox", "schema"]
    assert (
        "all but `schema` (the schema of the installed\nplug-ins), `sandbox`, `demo` (which writes"
        " its own), `console hash-password` and `ledger copy`\n(which names both ledgers)" in readme
    )
