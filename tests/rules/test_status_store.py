"""`nextstep status` finds the ledger from nextstep.yaml alone (issue 12.4): broken rules, or a
broken setting elsewhere, must not stop it — that is when an operator needs it most."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextstep.engine.commands.cli import main
from nextstep.engine.errors import ConfigError
from nextstep.engine.ledger import open_store
from nextstep.engine.rules.config import store_url
from tests.rules.helpers import write_config

BROKEN_RULES = """\
  - id: broken
    trigger: {csv: {path: "in/*.csv"}}
    send: {channel: crm, body: {x: "{{ event.name | titel }}"}}
    when: [
"""


def test_status_runs_while_the_rules_are_invalid(tmp_path: Path) -> None:
    config = write_config(tmp_path, BROKEN_RULES)
    assert CliRunner().invoke(main, ["validate", "-c", str(config)]).exit_code == 1
    open_store(store_url(config)).close()  # the ledger exists, as a daemon would have made it
    result = CliRunner().invoke(main, ["status", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "does not load" not in result.output
    assert "queue depth" in result.output


def test_the_store_url_is_read_from_nextstep_yaml_alone(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    path = tmp_path / "nextstep.yaml"
    path.write_text(
        'store: ${LEDGER:-sqlite:///ledger.db}\nchannels: {x: {type: pigeon, token: "${UNSET}"}}\n',
        encoding="utf-8",
    )
    assert store_url(path, env={}) == f"sqlite:///{tmp_path / 'ledger.db'}"
    assert store_url(path, env={"LEDGER": "postgresql://db/x"}) == "postgresql://db/x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("store: ${LEDGER}\n", "environment variable LEDGER is not set", id="unset"),
        pytest.param("store: [1]\n", "expected a URL", id="not-text"),
        pytest.param("store: x\n  y: [\n", "YAML syntax error", id="syntax"),
    ],
)
def test_a_store_that_cannot_be_read_is_a_located_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "nextstep.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        store_url(path, env={})
    assert message in str(caught.value.problems[0])


def test_the_status_table_never_truncates_a_state(tmp_path: Path) -> None:
    """Issue 12.9: a narrow terminal showed `skipp…`; the rule name folds instead."""
    from nextstep.engine.ledger.base import NewNotification

    config = write_config(tmp_path, BROKEN_RULES)
    store = open_store(store_url(config))
    rows = [
        NewNotification("a-rather-long-rule-name", "v1", "crm", "", {}, {}, time.time(), "k")
        for _ in range(2)
    ]
    store.enqueue(rows)
    store.close()
    for columns in ("46", "80"):
        result = CliRunner().invoke(main, ["status", "-c", str(config)], env={"COLUMNS": columns})
        assert result.exit_code == 0, result.output
        assert all(s in result.output for s in ("queued", "skipped", "total")), result.output
        assert "…" not in result.output, result.output
