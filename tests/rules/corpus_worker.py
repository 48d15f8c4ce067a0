"""Runs the hostile-input corpus (tests/rules/corpus/) and measures each input.

Each corpus file is a rule file (or, with ``# file: config``, a ``nextstep.yaml``) whose header
says what it is and what must happen::

    # corpus: what the input is
    # stage: load | render     (load: the config must not load; render: it loads, and rendering
    #                           the rule `hostile` with EVENT must fail)
    # expect: text of the problem or render error

For each input this prints one JSON line: name, outcome text, seconds and peak bytes (Python
allocations, tracemalloc) of loading (and rendering). Run by tests/rules/test_corpus.py in a
subprocess with an address-space limit, so that an input that is not bounded fails that test
instead of exhausting the machine; ``python -m tests.rules.corpus_worker --table`` prints the
figures for a person.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nextstep.engine.errors import ConfigError, RenderError
from nextstep.engine.model import Event
from nextstep.engine.rules.config import load_config
from nextstep.engine.rules.render import evaluate

CORPUS = Path(__file__).parent / "corpus"
HEADER = re.compile(r"^#\s*(corpus|stage|expect|file):\s*(.*?)\s*$", re.M)
CONFIG = """\
store: sqlite:///corpus.db
rules: rules/
server: {listen: "127.0.0.1:0", event_token: corpus-event-token, webhook_secret: corpus-secret-xx}
channels:
  crm: {type: webhook, url: "http://127.0.0.1:9/hook"}
"""
EVENT = {
    "s": "x" * 100_000,
    "t": "\t",
    "n": 1,
    "items": list(range(1000)),
    "phone": "+34600111222",
}
MEMORY_LIMIT = 3 * 1024**3  # address space of the worker: an unbounded input dies here


@dataclass(frozen=True)
class Case:
    """One corpus input."""

    name: str
    text: str
    what: str
    stage: str
    expect: str
    config: bool = False

    @classmethod
    def read(cls, path: Path) -> Case:
        """A case from a corpus file and its header."""
        text = path.read_text(encoding="utf-8")
        fields = dict(HEADER.findall(text))
        return cls(
            path.stem,
            text,
            fields["corpus"],
            fields.get("stage", "load"),
            fields["expect"],
            fields.get("file") == "config",
        )


def generated() -> list[Case]:
    """Inputs too large to keep in the repository."""
    huge = "# padding\n" * 300_000
    return [
        Case(
            "yaml-huge-file",
            "rules: []\n" + huge,
            "a 3 MB rule file",
            "load",
            "bytes is too large (at most 1,000,000): not read",
        ),
        Case(
            "yaml-huge-string",
            'rules:\n  - id: hostile\n    description: "' + "x" * 990_000 + '"\n',
            "a 990 kB string in a rule (within the file limit)",
            "load",
            "missing required key 'trigger'",
        ),
    ]


def cases() -> list[Case]:
    """Every corpus input, in name order."""
    found = [Case.read(p) for p in sorted(CORPUS.glob("*.yaml"))] + generated()
    return sorted(found, key=lambda c: c.name)


def outcome(case: Case, root: Path) -> str:
    """What loading (and rendering) the case gives: the problems or the render error."""
    (root / "rules").mkdir(parents=True, exist_ok=True)
    if case.config:
        (root / "nextstep.yaml").write_text(case.text, encoding="utf-8")
    else:
        (root / "nextstep.yaml").write_text(CONFIG, encoding="utf-8")
        (root / "rules" / "case.yaml").write_text(case.text, encoding="utf-8")
    try:
        config = load_config(root / "nextstep.yaml", env={})
    except ConfigError as exc:
        return "load: " + "\n".join(str(p) for p in exc.problems)
    if case.stage != "render":
        return "loaded"
    try:
        evaluate(config.rules["hostile"], Event(EVENT, {}), now=0.0, default_country="ES")
    except RenderError as exc:
        return f"render: {exc}"
    return "rendered"


def measure(run: Callable[[], str]) -> tuple[str, float, int]:
    """(result, seconds, peak bytes): timed on its own, then again under tracemalloc."""
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, seconds, peak


def main(argv: list[str]) -> None:
    """Run every case (or those named); one JSON line each, or a table with ``--table``."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    table = "--table" in argv
    names = [a for a in argv if not a.startswith("--")]
    workdir = Path(tempfile.mkdtemp(prefix="nextstep-corpus-"))
    try:
        outcome(Case("warm-up", "rules: []\n", "", "load", ""), workdir / "warm-up")
        for case in cases():
            if names and case.name not in names:
                continue
            print(json.dumps({"name": case.name, "started": True}), flush=True)
            root = workdir / case.name
            result, seconds, peak = measure(lambda case=case, root=root: outcome(case, root))
            line = {"name": case.name, "outcome": result, "seconds": seconds, "peak": peak}
            if table:
                print(f"{case.name:<28} {seconds * 1000:8.1f} ms {peak / 1e6:7.2f} MB  {case.what}")
            else:
                print(json.dumps(line), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
