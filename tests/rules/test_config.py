"""load_config: the demo configuration, paths, secrets, versions, stored definitions."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nextstep.engine.errors import ConfigError
from nextstep.engine.rules.config import load_config, resolve_store, rule_from_definition
from nextstep.engine.rules.rule import RetryPolicy, version_of
from tests.rules.helpers import CONFIG, WHATSAPP_SEND, load, write_config

ROOT = Path(__file__).resolve().parents[2]
RULE = "  - id: loan\n" + textwrap.indent(
    textwrap.dedent(
        """\
    trigger: {csv: {path: "inbox/*.csv"}}
    to: "{{ event.phone }}"
"""
        + WHATSAPP_SEND
    ),
    "    ",
)


def test_demo_configuration_loads() -> None:
    config = load_config(ROOT / "nextstep.yaml", env={})
    assert set(config.rules) >= {
        "loan-docs-required",
        "appointment-confirmed",
        "case-documents-received",
    }
    kinds = {rule.trigger_kind for rule in config.rules.values()}
    assert kinds >= {"csv", "http", "db_poll"}
    assert config.default_country == "ES"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8787)
    assert config.server.event_token == "demo-event-token-change-me"
    assert config.channels["whatsapp"].type == "1msg"
    assert config.channels["whatsapp"].settings["base_url"] == "http://127.0.0.1:8790"
    assert config.channels["mail"].settings["port"] == 8025
    assert config.store == f"sqlite:///{ROOT / 'nextstep.db'}"
    assert (config.status.poll_after, config.status.poll_every) == (300.0, 60.0)


def test_environment_overrides_defaults() -> None:
    env = {"ONEMSG_TOKEN": "real-token", "ONEMSG_INSTANCE_ID": "406401", "SMTP_PORT": "2525"}
    config = load_config(ROOT / "nextstep.yaml", env=env)
    settings = config.channels["whatsapp"].settings
    assert (settings["token"], settings["instance_id"]) == ("real-token", "406401")
    assert config.channels["mail"].settings["port"] == 2525


def test_rule_values(tmp_path: Path) -> None:
    config = load(tmp_path, RULE)
    rule = config.rules["loan"]
    assert (rule.file, rule.line) == (str(tmp_path / "rules" / "rules.yaml"), 2)
    assert rule.trigger_kind == "csv" and rule.trigger_config == {"path": "inbox/*.csv"}
    assert rule.source_key
    assert rule.send.channel_type == "1msg" and len(rule.send.compiled.params) == 3  # type: ignore[attr-defined]
    assert rule.policy.retry == RetryPolicy()
    assert rule.version == version_of(rule.definition) and len(rule.version) == 12


def test_version_follows_the_definition(tmp_path: Path) -> None:
    first = load(tmp_path, RULE).rules["loan"].version
    again = load(tmp_path, RULE).rules["loan"].version
    changed = load(tmp_path, RULE.replace("language: en", "language: es")).rules["loan"].version
    assert first == again != changed


def test_rule_from_stored_definition(tmp_path: Path) -> None:
    config = load(tmp_path, RULE)
    rule = config.rules["loan"]
    stored = json.loads(json.dumps(rule.definition))  # as the ledger keeps it
    rebuilt = rule_from_definition(stored, config)
    assert rebuilt.version == rule.version and rebuilt.id == "loan"
    broken = {**stored, "send": {**stored["send"], "channel": "nope"}}
    with pytest.raises(ConfigError, match="unknown channel 'nope'"):
        rule_from_definition(broken, config)
    with pytest.raises(ConfigError, match="missing required key 'trigger'"):
        rule_from_definition({k: v for k, v in stored.items() if k != "trigger"}, config)


def test_every_problem_at_once(tmp_path: Path) -> None:
    text = RULE + RULE.replace("id: loan", "id: loan2").replace("channel: whatsapp", "channel: wa")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text.replace('inbox/*.csv"}}', 'inbox/*.csv", settle: soon}}'))
    messages = [p.message for p in caught.value.problems]
    assert sum("is not a duration" in m for m in messages) == 2
    assert sum("unknown channel 'wa'" in m for m in messages) == 1


def test_rules_as_glob_list_and_file(tmp_path: Path) -> None:
    write_config(tmp_path, RULE, name="a.yaml")
    write_config(tmp_path, RULE.replace("id: loan", "id: other"), name="b.yml")
    (tmp_path / "rules" / "notes.txt").write_text("not a rule file")
    for spec, expected in [
        ("rules/", {"loan", "other"}),
        ("rules/*.yaml", {"loan"}),
        ("[rules/b.yml]", {"other"}),
        ("[rules/a.yaml, rules/b.yml]", {"loan", "other"}),
    ]:
        (tmp_path / "nextstep.yaml").write_text(CONFIG.replace("rules: rules/", f"rules: {spec}"))
        assert set(load_config(tmp_path / "nextstep.yaml", env={}).rules) == expected, spec


def test_missing_rules_path_and_config(tmp_path: Path) -> None:
    (tmp_path / "nextstep.yaml").write_text(CONFIG.replace("rules: rules/", "rules: nowhere/"))
    with pytest.raises(ConfigError, match="'nowhere/' is neither a rule file"):
        load_config(tmp_path / "nextstep.yaml", env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", env={})


def test_config_checks(tmp_path: Path) -> None:
    bad = (
        CONFIG.replace("default_country: ES", "default_country: XX")
        .replace('listen: "127.0.0.1:0"', 'listen: "127.0.0.1:99999"')
        .replace("type: smtp", "type: smpt")
    )
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, RULE, config=bad)
    text = str(caught.value)
    assert "'XX' is not a region" in text
    assert "port 99999 is not a TCP port" in text
    assert "unknown channel type 'smpt'; did you mean 'smtp'?" in text


def test_resolve_store(tmp_path: Path) -> None:
    assert resolve_store("sqlite:///x.db", tmp_path) == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_store("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert resolve_store("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"
    assert resolve_store("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"


def test_empty_rule_file_is_no_rules(tmp_path: Path) -> None:
    write_config(tmp_path, RULE)
    (tmp_path / "rules" / "empty.yaml").write_text("# nothing yet\n")
    assert set(load_config(tmp_path / "nextstep.yaml", env={}).rules) == {"loan"}
