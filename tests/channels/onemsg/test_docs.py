"""The examples of docs/sandbox.md and of the scenarios module docstring run."""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

import nextstep.adapters.channels.onemsg.sandbox.scenarios as scenarios_module
from nextstep.adapters.channels.onemsg.sandbox.scenarios import builtin_scripts, scenario_from
from nextstep.adapters.channels.onemsg.sandbox.templates import load_templates
from nextstep.adapters.channels.onemsg.templates import parse_templates

DOC = Path(__file__).resolve().parents[3] / "docs" / "sandbox.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_doc_scenario_loads() -> None:
    scenario = scenario_from(yaml.safe_load(yaml_blocks()[0]))
    assert (scenario.status, scenario.status_recover_after) == ("disconnected", 3)
    assert scenario.script_for("34600111222") is scenario.scripts[0]
    assert scenario.script_for("34600119999").answers[0].retry_after == "http-date:30"


def test_doc_templates_load(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    [block] = [b for b in yaml_blocks() if b.startswith("templates:")]
    path.write_text(block, encoding="utf-8")
    [template] = parse_templates(load_templates(path))
    assert (template.name, template.variables, template.approved) == ("next_step", 3, True)


def test_doc_faults_load() -> None:
    [block] = [b for b in yaml_blocks() if "hold: forever" in b]
    scenario = scenario_from(yaml.safe_load(block))
    held = scenario.script_for("34600117002")
    assert held is not None and held.answers[0].accepts and held.answers[0].hold == math.inf
    retried = scenario.script_for("34600110201")
    assert retried is not None and retried.acks[1].repeat == 3
    missing = scenario.script_for("34600110204")
    assert missing is not None and [a.post for a in missing.acks] == [True, False, False]


def test_docstring_scenario_loads() -> None:
    doc = scenarios_module.__doc__ or ""
    block = doc.split("may start the channel ``disconnected``::", 1)[1].split("\n\nAn answer", 1)[0]
    text = "\n".join(line[4:] for line in block.strip("\n").splitlines())
    scenario = scenario_from(yaml.safe_load(text))
    assert scenario.script_for("34600114242") is not None


def test_doc_table_lists_every_builtin_suffix() -> None:
    text = DOC.read_text(encoding="utf-8")
    for script in builtin_scripts():
        assert f"| {script.match} |" in text
        assert f"{script.match}    " in (scenarios_module.__doc__ or "")
