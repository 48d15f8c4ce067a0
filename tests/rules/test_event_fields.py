"""`validate` checks the event fields a rule reads against those its trigger declares
(issue 12.11): an http schema closed by ``additionalProperties: false``, a csv ``header_map``
(open: only near misses), a db_poll query's columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nextstep.adapters.triggers.db_poll.columns import select_columns
from nextstep.adapters.triggers.http import schema_fields
from nextstep.engine.commands.cli import main
from nextstep.engine.plugins import DeclaresFields, trigger_class
from tests.rules.helpers import write_config

RULES = """\
  - id: closed-http
    trigger:
      http:
        path: /events/x
        schema:
          type: object
          additionalProperties: false
          properties: {phone: {type: string}, name: {type: string}, email: {type: string}}
    when: event.nmae is defined
    to: "{{ event.mobile_phone }}"
    send: {channel: crm, body: {x: "{{ event.get('name') }} {{ event['emial'] }}"}}
    policy:
      fallback:
        - on: [failed]
          send: {channel: mail, to: "{{ event.mail }}", subject: s, body: b}
  - id: open-http
    trigger: {http: {path: /events/y, schema: {properties: {phone: {type: string}}}}}
    to: "{{ event.anything }}"
    send: {channel: crm, body: {x: 1}}
  - id: csv-map
    trigger: {csv: {path: "in/*.csv", header_map: {phone: Mobile, first_name: [Name, Nombre]}}}
    to: "{{ event.phon }}"
    send: {channel: crm, body: {x: "{{ event.first_nam }} {{ event.stage }}"}}
  - id: db
    trigger:
      db_poll:
        url: sqlite:///x.db
        query: SELECT id, phone, client_name AS name, updated_at FROM t WHERE updated_at > :cursor
        cursor: updated_at
    to: "{{ event.phone }}"
    send: {channel: crm, body: {x: "{{ event.client_name }}"}}
"""


def test_validate_reports_every_unknown_event_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "-c", str(write_config(tmp_path, RULES))])
    assert result.exit_code == 1
    http = "is not a field of the http trigger's schema"
    assert result.stdout.splitlines() == [
        f"rules/rules.yaml:10:9: rule closed-http: when: 'event.nmae' {http}; did you mean 'name'?",
        f"rules/rules.yaml:11:7: rule closed-http: to: 'event.mobile_phone' {http} "
        "(it has: email, name, phone)",
        f"rules/rules.yaml:12:34: rule closed-http: send.body.x: 'event.emial' {http}; "
        "did you mean 'email'?",
        "rules/rules.yaml:16:35: rule closed-http: policy.fallback[0].send.to: 'event.mail' "
        f"{http}; did you mean 'email'?",
        "rules/rules.yaml:23:7: rule csv-map: to: 'event.phon' is not a field of the csv "
        "trigger's header_map; did you mean 'phone'?",
        "rules/rules.yaml:24:34: rule csv-map: send.body.x: 'event.first_nam' is not a field "
        "of the csv trigger's header_map; did you mean 'first_name'?",
        "rules/rules.yaml:32:34: rule db: send.body.x: 'event.client_name' is not a field of "
        "the db_poll query's columns (it has: id, name, phone, updated_at)",
    ]


def test_the_bundled_triggers_declare_fields() -> None:
    for kind in ("http", "csv", "db_poll"):
        assert isinstance(trigger_class(kind), DeclaresFields), kind


@pytest.mark.parametrize(
    ("schema", "fields"),
    [
        pytest.param({"properties": {"a": {}}, "additionalProperties": False}, {"a"}, id="closed"),
        pytest.param({"properties": {"a": {}}, "unevaluatedProperties": False}, {"a"}, id="uneval"),
        pytest.param({"properties": {"a": {}}}, None, id="open"),
        pytest.param(
            {
                "properties": {"a": {}},
                "additionalProperties": False,
                "patternProperties": {"x": {}},
            },
            None,
            id="pattern",
        ),
        pytest.param(None, None, id="no-schema"),
    ],
)
def test_http_schema_fields(schema: object, fields: set[str] | None) -> None:
    found = schema_fields(schema)
    assert (None if found is None else set(found.names)) == fields


@pytest.mark.parametrize(
    ("query", "columns"),
    [
        pytest.param(
            "SELECT id, c.case_ref, name AS n FROM c", {"id", "case_ref", "n"}, id="plain"
        ),
        pytest.param('select distinct count(*) n, "Odd Name" from t', {"n", "Odd Name"}, id="q"),
        pytest.param(
            "WITH x AS (SELECT a FROM y) SELECT x.a, f(b) AS fb FROM x", {"a", "fb"}, id="cte"
        ),
        pytest.param("SELECT a, (SELECT max(b) FROM u) m FROM t", {"a", "m"}, id="subquery"),
        pytest.param("SELECT a, -- b\n c /* , d */ FROM t", {"a", "c"}, id="comments"),
        pytest.param("SELECT * FROM t", None, id="star"),
        pytest.param("SELECT t.* FROM t", None, id="table-star"),
        pytest.param("SELECT a + b FROM t", None, id="no-alias"),
        pytest.param("SELECT CASE WHEN a THEN 1 END FROM t", None, id="case-no-alias"),
    ],
)
def test_query_columns(query: str, columns: set[str] | None) -> None:
    found = select_columns(query)
    assert (None if found is None else set(found)) == columns


def test_postgresql_folds_unquoted_names() -> None:
    assert select_columns('SELECT Phone, "Name" FROM t', fold_case=True) == {"phone", "Name"}
