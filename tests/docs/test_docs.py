"""Every example of the docs is executed, so the docs stay true.

Conventions (an HTML comment on the line before a fenced block; see tests/docs/markdown.py):

* ``<!-- example: config -->`` — a complete ``nextstep.yaml``: loaded with ``load_config`` in
  an empty folder (its ``${VARS}`` set to placeholder values);
* ``<!-- example: rules -->`` — a complete rule file: loaded beside the repository's
  ``nextstep.yaml`` (its channels), and every ``examples:`` entry must pass as in
  ``nextstep test``. ``invalid``: it must fail to load; ``failing``: it loads and one of its
  examples fails. ``file=PATH`` names it for console sessions;
* ``<!-- example: event -->`` (JSON object or array of objects), ``scenario`` (a sandbox
  scenario file), ``healthz`` (the shape of ``GET /healthz``);
* ``<!-- run -->`` before a ```` ```console ```` block — the session is run and the output shown
  must be what the commands print (tests/docs/console.py has the rules).

In docs/rules.md, operations.md and guarantees.md every YAML and JSON block must be an example
and every console block must run. Other checks keep reference lists complete: commands and
their options, metric names, the example config's environment variables, schema keys, and the
tests that guarantees.md cites.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from nextstep.adapters.channels.onemsg.sandbox.command import DEMO_TOKEN
from nextstep.adapters.channels.onemsg.sandbox.scenarios import scenario_from
from nextstep.engine.commands.cli import main
from nextstep.engine.errors import ConfigError
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.rules.config import load_config
from nextstep.engine.rules.editor import document
from nextstep.engine.rules.examples import check_example
from nextstep.engine.runtime.reload import ReloadState
from nextstep.engine.runtime.server import health_document
from nextstep.engine.runtime.supervisor import TaskHealth
from nextstep.engine.sending.circuit import CircuitStatus
from tests.docs.console import Session, difference, environment, invoke, sessions, workspace
from tests.docs.markdown import DOCS, OWNED, ROOT, Block, blocks, marked
from tests.support.sandbox import running_sandbox

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_NO_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _text(*names: str) -> str:
    return "\n".join((DOCS / name).read_text(encoding="utf-8") for name in names)


# -- examples ------------------------------------------------------------------------------------
def _placeholder(name: str) -> str:
    """A value of the right shape for a ``${VAR}`` without a default."""
    if name.endswith("_URL"):
        return "https://nextstep.example.com"
    return "587" if name.endswith("_PORT") else f"doc-{name.lower()}"


def _check_config(block: Block, root: Path) -> None:
    (root / "rules").mkdir()
    path = root / "nextstep.yaml"
    path.write_text(block.text, encoding="utf-8")
    env = {name: _placeholder(name) for name in _NO_DEFAULT.findall(block.text)}
    load_config(path, env=env)


def _check_rules(block: Block, flags: frozenset[str], root: Path) -> None:
    shutil.copy(ROOT / "nextstep.yaml", root / "nextstep.yaml")
    name = block.marker.args.get("file", "rules/example.yaml") if block.marker else ""
    assert name.startswith("rules/"), f"{block.where}: a rule file example lives in rules/"
    target = root / name
    target.parent.mkdir(parents=True)
    target.write_text(block.text, encoding="utf-8")
    if "invalid" in flags:
        with pytest.raises(ConfigError):
            load_config(root / "nextstep.yaml", env={})
        return
    config = load_config(root / "nextstep.yaml", env={})
    assert config.rules, f"{block.where}: no rules"
    failures = [
        f"{rule.id} examples[{example.index}]: {'; '.join(found)}"
        for rule in config.rules.values()
        for example in rule.examples
        if (found := check_example(rule, example, default_country=config.default_country))
    ]
    if "failing" in flags:
        assert failures, f"{block.where}: marked failing, but every example passes"
    else:
        assert not failures, f"{block.where}: " + "\n".join(failures)


def _check_healthz(doc: dict[str, Any]) -> None:
    expected = health_document(
        triggers=[], circuits={}, reload=ReloadState().as_dict(), now=0.0, started_at=0.0
    )
    assert set(doc) == set(expected)
    trigger_keys = set(TaskHealth("t", "csv").as_dict())
    assert all(set(t) == trigger_keys for t in doc["triggers"])
    circuit_keys = set(CircuitStatus("closed").public())
    circuit_keys |= {"in_flight", "in_flight_target", "latency", "backlog", "paused_until"}
    assert all(set(c) == circuit_keys for c in doc["circuits"].values())
    assert set(doc["reload"]) == set(ReloadState().as_dict())


@pytest.mark.parametrize("block", marked("example"), ids=lambda b: b.where)
def test_example(block: Block, tmp_path: Path) -> None:
    assert block.marker is not None
    kind, *flags = block.marker.words
    if kind == "config":
        _check_config(block, tmp_path)
    elif kind == "rules":
        _check_rules(block, frozenset(flags), tmp_path)
    elif kind == "event":
        data = json.loads(block.text)
        items = data if isinstance(data, list) else [data]
        assert items and all(isinstance(item, dict) for item in items)
    elif kind == "scenario":
        assert scenario_from(yaml.safe_load(block.text)).scripts
    elif kind == "healthz":
        _check_healthz(json.loads(block.text))
    else:
        pytest.fail(f"{block.where}: unknown example kind {kind!r}")


@pytest.mark.parametrize("name", OWNED)
def test_every_block_of_the_reference_is_checked(name: str) -> None:
    for block in blocks(DOCS / name):
        marker = block.marker.name if block.marker else None
        if block.lang in {"yaml", "yml", "json"}:
            assert marker == "example", (
                f"{block.where}: a {block.lang} block with no example marker"
            )
        if block.lang == "console":
            assert marker == "run", f"{block.where}: a console block that does not run"


# -- console sessions ----------------------------------------------------------------------------
@pytest.mark.parametrize("session", sessions(), ids=lambda s: s.key)
async def test_console_session(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace(tmp_path, session))
    async with contextlib.AsyncExitStack() as stack:
        url = None
        if session.sandbox:
            sandbox = await stack.enter_async_context(running_sandbox(token=DEMO_TOKEN))
            url = sandbox.base_url
        env = environment(url)
        steps = session.steps()
        exit_code: int | None = None
        for i, step in enumerate(steps):
            if step.command == "echo $?":
                assert exit_code is not None, f"{step.where}: echo $? before any command"
                assert step.shown == (str(exit_code),), (
                    f"{step.where}: the exit code was {exit_code}"
                )
                continue
            result = await asyncio.to_thread(invoke, step, env)
            exit_code = result.exit_code
            checked = i + 1 < len(steps) and steps[i + 1].command == "echo $?"
            assert checked or exit_code == 0, f"{step.where}: exit {exit_code}\n{result.output}"
            problem = difference(step.shown, result.output)
            assert problem is None, f"{step.where}: `{step.command}`: {problem}"


# -- the README and the CLI ----------------------------------------------------------------------
def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    match = re.search(r"sed -n '([^']+)' README\.md", ci)
    assert match is not None, ".ci/run no longer extracts the command with sed"
    assert 'bash -c "$test_command"' in ci
    extracted = subprocess.run(
        ["sed", "-n", match.group(1), "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("<!-- test-command -->", 1)[1]
    block = re.match(r"\s*```\w*\n(.*?)```", after, re.DOTALL)
    assert block is not None, "no fenced block after <!-- test-command -->"
    assert block.group(1).count("\n") == 1, "the test command must be one line"
    assert extracted == block.group(1)


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    listed = result.output.split("Commands:", 1)[1]
    names = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert names == set(main.commands)


def test_docs_cover_every_command_and_option() -> None:
    text = _text("rules.md", "operations.md")
    for name, command in main.commands.items():
        assert f"nextstep {name}" in text, f"nextstep {name} is not documented"
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            longest = max(param.opts, key=len)
            if longest != "--help":
                assert longest in text, f"nextstep {name} {longest} is not documented"


# -- reference lists -----------------------------------------------------------------------------
def _exposed_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_operations_lists_every_metric() -> None:
    text = _text("operations.md")
    exposed = _exposed_names()
    for name in exposed:
        assert f"`{name}`" in text, f"metric {name} is not listed in operations.md"
    for mentioned in set(re.findall(r"\bnextstep_[a-z_]+", text)):
        base = re.sub(r"_(bucket|sum|count)$", "", mentioned)
        assert base in exposed, f"operations.md names {mentioned}, which is not a metric"


def test_operations_names_every_variable_of_the_example_config() -> None:
    text = _text("operations.md")
    config = (ROOT / "nextstep.yaml").read_text(encoding="utf-8")
    for name in sorted(set(_VARIABLE.findall(config))):
        assert f"`{name}`" in text, f"{name} (used by nextstep.yaml) is not in operations.md"


def _schema_keys(node: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                keys |= set(value)
            keys |= _schema_keys(value)
    elif isinstance(node, list):
        for item in node:
            keys |= _schema_keys(item)
    return keys


def test_rule_reference_names_every_schema_key() -> None:
    keys = _schema_keys(document("rules")["$defs"]) | _schema_keys(document("config")["$defs"])
    text = _text("rules.md")
    words = {w for span in _CODE_SPAN.findall(text) for w in re.findall(r"[\w$]+", span)}
    missing = sorted(keys - words)
    assert not missing, f"rules.md does not name these keys: {missing}"


def test_guarantees_cite_tests_that_exist() -> None:
    cited = re.findall(r"(tests/[\w/]+\.py)::(\w+)", _text("guarantees.md"))
    assert len(cited) >= 4
    for path, name in cited:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{path}::{name} not found"


@pytest.mark.parametrize("name", OWNED)
def test_links_between_pages_resolve(name: str) -> None:
    for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)", _text(name)):
        assert (DOCS / target).is_file(), f"{name} links to {target}, which does not exist"
