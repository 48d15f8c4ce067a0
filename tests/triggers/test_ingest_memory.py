"""Memory of ``nextstep ingest`` does not grow with the file (issue 13, item 3).

The same pipeline as ``nextstep ingest`` (the csv trigger, the rules, ``intake.emit``, a SQLite
ledger) reads a generated file of N rows and then one of 4N rows in a fresh process; the peak
of Python's heap (tracemalloc) during each may differ only by a bound that does not depend on N.
Few distinct phones keep the rules' bounded caches out of the figure, so what is left is what
grows per row (the old ``array`` of every queued id grew 8 bytes a row: 480 KB here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nextstep.engine.intake.idruns import IdRuns

SCRIPT = r"""
import asyncio, csv, json, sys, tracemalloc
from pathlib import Path
from nextstep.engine.clock import SystemClock
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.plugins import TriggerContext, trigger_class
from nextstep.engine.rules.config import load_config

folder = Path(sys.argv[1])
config = load_config(folder / "nextstep.yaml")
rule = config.rules["memo"]

def write(path, rows, start):
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "name", "phone"])
        for i in range(start, start + rows):
            out.writerow([i, "maria", f"+3461{i % 500:07d}"])

async def ingest(path):
    runner = LedgerRunner(open_store(config.store))
    try:
        emit = make_emit(runner, [rule], SystemClock(), config.default_country)
        context = TriggerContext(runner.store, SystemClock(), str(folder), (rule.id,))
        trigger = trigger_class("csv")(rule.trigger_config, context)
        return await trigger.ingest(path, emit)
    finally:
        runner.close()

rows = int(sys.argv[2])
peaks = []
tracemalloc.start()
for n, start in ((rows, 0), (4 * rows, rows)):
    path = folder / f"file{n}.csv"
    write(path, n, start)
    tracemalloc.reset_peak()
    summary = asyncio.run(ingest(path))
    peaks.append(tracemalloc.get_traced_memory()[1])
    assert summary.queued == n, summary
print(json.dumps({"peaks": peaks}))
"""

CONFIG = """\
store: sqlite:///ledger.db
rules: rules/
default_country: ES
channels:
  whatsapp: {type: 1msg, base_url: "http://127.0.0.1:9", instance_id: t, token: t}
"""

RULE = """\
rules:
  - id: memo
    trigger:
      csv: {path: "*.csv", batch: 500}
    to: "{{ event.phone }}"
    dedupe: "{{ event.id }}"
    send:
      channel: whatsapp
      template: hello
      namespace: ns
      language: en
      text: "Hello <<1>>"
      params:
        1: "{{ event.name | title }} {{ event.id }}"
"""

ROWS = 15_000
BOUND = 250_000  # bytes: a small fraction of what 45,000 more rows cost before (480 KB)


@pytest.mark.timeout(300)
def test_peak_memory_of_an_ingest_does_not_grow_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "nextstep.yaml").write_text(CONFIG)
    (tmp_path / "rules" / "memo.yaml").write_text(RULE)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(ROWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr
    small, large = json.loads(done.stdout.strip().splitlines()[-1])["peaks"]
    assert large - small < BOUND, (small, large)


def test_id_runs_hold_consecutive_ids_as_one_run() -> None:
    ids = IdRuns()
    for n in [*range(10, 20), 25, 26, *range(40, 45)]:
        ids.append(n)
    assert ids.runs == 3
    assert len(ids) == 17
    assert list(ids) == [*range(10, 20), 25, 26, *range(40, 45)]
    assert ids[0] == 10 and ids[10] == 25 and ids[-1] == 44
    assert [len(c) for c in ids.chunks(6)] == [6, 6, 5]
    assert [n for chunk in ids.chunks(6) for n in chunk] == list(ids)


def test_id_runs_refuse_an_id_out_of_order() -> None:
    ids = IdRuns()
    ids.append(5)
    with pytest.raises(ValueError, match="not after 5"):
        ids.append(5)


def test_id_runs_between_is_a_slice_of_the_ids() -> None:
    ids = IdRuns()
    for n in [*range(10, 20), 25, 26, *range(40, 45)]:
        ids.append(n)
    every = list(ids)
    for start in range(len(every) + 2):
        for stop in range(len(every) + 2):
            assert ids.between(start, stop) == every[start:stop], (start, stop)
