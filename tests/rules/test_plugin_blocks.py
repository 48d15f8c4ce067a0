"""Blocks the plug-ins own (a trigger's settings, a channel's settings, a send block) are checked
with the plug-in's schema and the trigger's ``check``, every problem at its place."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from nextstep.engine.errors import ConfigError
from nextstep.engine.rules.editor import document
from tests.rules.helpers import CONFIG, load


def problems(root: Path, rules: str, config: str = CONFIG) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(root, rules, config=config)
    return [str(p).split(": ", 1)[1] for p in caught.value.problems]


def rule(trigger: str) -> str:
    return f"""\
    - id: r
      trigger: {trigger}
      send: {{channel: crm, body: {{x: 1}}}}
    """


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        pytest.param(
            '{csv: {path: "in/*.csv", encoding: utf-99}}',
            "rule r: trigger.csv.encoding: unknown encoding 'utf-99' (e.g. utf-8, cp1252, utf-16)",
            id="csv-encoding",
        ),
        pytest.param(
            "{http: {path: /events/x, schema: {type: nothing}}}",
            "rule r: trigger.http.schema: is not a valid JSON Schema: ",
            id="http-schema",
        ),
        pytest.param(
            "{db_poll: {url: 'sqlite:///crm.db', cursor: at, id: id,"
            " query: 'SELECT * FROM t WHERE at > :cursor ORDER BY at, id'}}",
            "rule r: trigger.db_poll.query: must use the bound parameter :cursor_id",
            id="db-poll-tie-break",
        ),
        pytest.param(
            "{db_poll: {url: 'mysql://u@127.0.0.1/crm', cursor: at,"
            " query: 'SELECT * FROM t WHERE at > :cursor'}}",
            "rule r: trigger.db_poll.url: needs MySQLdb, which is not installed: write the URL as "
            "mysql+pymysql://… and pip install 'nextstep-whatsapp[mysql]'",
            id="db-poll-driver",
        ),
    ],
)
def test_trigger_checks(tmp_path: Path, trigger: str, expected: str) -> None:
    [found] = problems(tmp_path, rule(trigger))
    assert found.startswith(expected)


def test_check_and_schema_report_each_place_once(tmp_path: Path) -> None:
    found = problems(tmp_path, rule('{csv: {path: "in/*.csv", encoding: utf-99, batch: 0}}'))
    assert sorted(found) == [
        "rule r: trigger.csv.batch: 0 is less than the minimum of 1",
        "rule r: trigger.csv.encoding: unknown encoding 'utf-99' (e.g. utf-8, cp1252, utf-16)",
    ]
    missing = problems(tmp_path, rule("{csv: {settle: 1s}}"))
    assert missing == ["rule r: trigger.csv: missing required key 'path'"]


def test_send_keys_no_channel_takes_without_a_channel(tmp_path: Path) -> None:
    rules = rule("{http: {path: /events/x}}").replace("channel: crm, body: {x: 1}", "chanel: crm")
    assert sorted(problems(tmp_path, rules)) == [
        "rule r: send.chanel: unknown key 'chanel'; did you mean 'channel'?",
        "rule r: send: missing required key 'channel'",
    ]


def test_channel_settings_and_the_dispatcher_keys(tmp_path: Path) -> None:
    config = CONFIG.replace("token: secret-token}", "tokn: secret-token, max_in_flight: 0}")
    found = problems(tmp_path, rule("{http: {path: /events/x}}"), config)
    assert sorted(found) == [
        "channels.whatsapp.max_in_flight: 0 is less than the minimum of 1",
        "channels.whatsapp.tokn: unknown key 'tokn'; did you mean 'token'?",
        "channels.whatsapp: missing required key 'token'",
    ]


def test_secrets_of_channel_settings_are_text(tmp_path: Path) -> None:
    config = CONFIG.replace("instance: inst", "instance_id: 1234").replace("inst,", "1234,")
    config = config.replace(
        'url: "http://127.0.0.1:9/hook"}', 'url: "http://127.0.0.1:9/hook", headers: {X-Id: 7}}'
    )
    loaded = load(tmp_path, rule("{http: {path: /events/x}}"), config=config)
    assert loaded.channels["whatsapp"].settings["instance_id"] == "1234"
    assert loaded.channels["crm"].settings["headers"] == {"X-Id": "7"}


def test_send_blocks_follow_their_channel_type(tmp_path: Path) -> None:
    rules = """\
    - id: r
      trigger: {http: {path: /events/x}}
      send: {channel: crm, bdy: {x: 1}}
      policy:
        fallback:
          - on: failed
            send: {channel: mail, to: a@example.com, subject: s, body: b, params: {1: x}}
    """
    assert sorted(problems(tmp_path, rules)) == [
        "rule r: policy.fallback[0].send.params: 'params' is not used by smtp channels "
        "(they take: to, subject, body)",
        "rule r: send.bdy: unknown key 'bdy'; did you mean 'body'?",
    ]


def test_a_missing_send_key_names_the_channel_type(tmp_path: Path) -> None:
    rules = rule("{http: {path: /events/x}}").replace("body: {x: 1}", "bod: 1, subject: s")
    assert sorted(problems(tmp_path, rules)) == [
        "rule r: send.bod: unknown key 'bod'; did you mean 'body'?",
        "rule r: send.subject: 'subject' is not used by webhook channels (they take: body)",
    ]
    without = rule("{http: {path: /events/x}}").replace("body: {x: 1}", "subject: s")
    assert "rule r: send: missing required key 'body' for a webhook channel" in problems(
        tmp_path, without
    )


def test_the_editor_schema_holds_every_installed_plug_in() -> None:
    rules, config = document("rules"), document("config")
    for doc in (rules, config):
        Draft202012Validator.check_schema(doc)
    defs = rules["$defs"]
    assert {"trigger.csv", "trigger.http", "trigger.db_poll"} <= set(defs)
    assert set(defs["trigger"]["properties"]) >= {"csv", "http", "db_poll"}
    assert {"template", "params", "body", "subject"} <= set(defs["send"]["properties"])
    channel = config["$defs"]["channel.1msg"]
    assert {"type", "base_url", "token", "rate", "max_in_flight"} <= set(channel["properties"])
    assert {"1msg", "webhook", "smtp"} <= set(
        config["$defs"]["channel"]["properties"]["type"]["anyOf"][0]["enum"]
    )
