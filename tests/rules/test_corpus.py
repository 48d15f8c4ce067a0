"""Hostile inputs (issue 15): every file of tests/rules/corpus/ ends in its expected problem or
render error within :data:`SECONDS` and :data:`MEGABYTES`.

The inputs run in one subprocess (tests/rules/corpus_worker.py) with an address-space limit:
an input that is not bounded (an alias bomb expanded, a template building a gigabyte) kills the
worker and fails its test, instead of taking the machine's memory. The bounds are loose enough
for a loaded 2-core machine; the figures of a quiet run are in the worker's ``--table``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.rules.corpus_worker import Case, cases

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 1.0
MEGABYTES = 50
CASES = cases()


@cache
def results() -> dict[str, Any]:
    """Every case's result line (by name), and what the worker said if it stopped early."""
    run = subprocess.run(
        [sys.executable, "-m", "tests.rules.corpus_worker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    found: dict[str, Any] = {"stderr": run.stderr[-3000:], "returncode": run.returncode}
    for line in run.stdout.splitlines():
        record = json.loads(line)
        found.setdefault(record["name"], record)
        if "outcome" in record:
            found[record["name"]] = record
    return found


def test_the_corpus_has_every_kind_of_input() -> None:
    names = [c.name for c in CASES]
    for prefix, least in (("yaml-", 8), ("jinja-", 25), ("escape-", 8)):
        assert sum(n.startswith(prefix) for n in names) >= least, prefix


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused_within_bounds(case: Case) -> None:
    record = results().get(case.name)
    assert record is not None and "outcome" in record, (
        f"the worker stopped at {case.name} (exit {results()['returncode']}): {results()['stderr']}"
    )
    stage = "load: " if case.stage == "load" else "render: "
    assert record["outcome"].startswith(stage), record["outcome"][:500]
    assert case.expect in record["outcome"], record["outcome"][:500]
    assert record["seconds"] < SECONDS, f"{record['seconds']:.2f} s"
    assert record["peak"] < MEGABYTES * 1e6, f"{record['peak'] / 1e6:.1f} MB"
