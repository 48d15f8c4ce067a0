"""`nextstep validate` over a folder of broken files: every mistake once, at its line, in one run.

Each line of tests/rules/fixtures/broken/ that carries ``# expect: TEXT`` must get exactly one
problem on that line of that file whose message contains TEXT, and nothing else is reported.
"""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from nextstep.engine.commands.cli import main

BROKEN = Path(__file__).parent / "fixtures" / "broken"
PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")
MARKER = re.compile(r"#\s*expect:\s*(?P<text>.+?)\s*$")


def expected_markers() -> list[tuple[Path, int, str]]:
    found = []
    for path in sorted(BROKEN.rglob("*.yaml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = MARKER.search(line)
            if match:
                found.append((path.resolve(), number, match.group("text")))
    return found


def test_every_mistake_is_reported_once_at_its_line() -> None:
    result = CliRunner().invoke(
        main,
        ["validate", "-c", str(BROKEN / "nextstep.yaml")],
        env={"NEXTSTEP_BROKEN_FIXTURE_TOKEN": None},
    )
    assert result.exit_code == 1, result.output
    problems = []
    for line in result.stdout.splitlines():
        match = PROBLEM.match(line)
        assert match, f"not a FILE:LINE:COL problem line: {line!r}"
        problems.append((Path(match["file"]).resolve(), int(match["line"]), match["rest"]))

    markers = expected_markers()
    assert len(markers) >= 30
    kinds = {text.split("'")[0].split(":")[0] for _, _, text in markers}
    assert len(kinds) >= 15, kinds
    unmatched = list(problems)
    for path, line, text in markers:
        hits = [p for p in problems if p[0] == path and p[1] == line and text in p[2]]
        assert len(hits) == 1, f"{path.name}:{line}: expected one problem with {text!r}, got {hits}"
        unmatched.remove(hits[0])
    assert unmatched == [], "problems without an expect: marker"
    assert f"{len(markers)} problems found" in result.output


def test_problem_lines_name_the_rule_and_path() -> None:
    result = CliRunner().invoke(main, ["validate", "-c", str(BROKEN / "nextstep.yaml")])
    assert (
        "rules/03-unknown-key.yaml:7:7: rule unknown-key: send.tempalte: "
        "unknown key 'tempalte'; did you mean 'template'?"
    ) in result.stdout
    # The misspelt key leaves `template` missing too; that is the same mistake, reported once.
    assert "missing required key 'template'" not in result.stdout
