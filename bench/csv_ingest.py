"""Benchmark: a 1,000,000-row CSV through the csv trigger, the real rules and intake.emit into
a fresh SQLite ledger, beside a bare ``csv.DictReader`` pass over the same file.

Each row is matched by a condition (three rows in four pass), its phone normalised, and three
template parameters rendered; every batch is one ledger transaction with the file's progress.
The collector is tuned as the daemon does after start-up (``runtime.gctune.tuned_gc``).

    .venv/bin/python bench/csv_ingest.py [--rows N] [--batch N] [--keep]

Prints rows/s, peak RSS (targets: >= 20,000 rows/s, < 200 MB at any --rows, 5,000,000 included)
and the ledger's bytes per notification, the CPU the ingest used,
and the CPU per row of each stage measured one after the other (where the time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from nextstep.adapters.triggers.csv.detect import inspect_file
from nextstep.adapters.triggers.csv.reader import CsvFile, CsvOptions
from nextstep.engine.clock import SystemClock
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Event
from nextstep.engine.plugins import TriggerContext, trigger_class
from nextstep.engine.rules.config import load_config
from nextstep.engine.rules.render import Skipped, evaluate
from nextstep.engine.runtime.gctune import tuned_gc

CONFIG = """\
store: sqlite:///ledger.db
rules: rules/
default_country: ES
channels:
  whatsapp: {type: 1msg, base_url: "http://127.0.0.1:9", instance_id: bench, token: bench}
"""

RULE = """\
rules:
  - id: loan-docs
    trigger:
      csv: {path: "inbox/*.csv", batch: BATCH}
    when: event.stage == "docs_required"
    to: "{{ event.phone }}"
    dedupe: "{{ event.application_id }}:{{ event.stage }}"
    send:
      channel: whatsapp
      template: next_step
      namespace: 3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de
      language: en
      text: 'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>'
      params:
        1: "{{ event.first_name | title }}"
        2: "loan application #{{ event.application_id }}"
        3: "upload documents in your account by {{ event.due_date }}"
"""

NAMES = ["maria", "ana", "jose", "lucia", "pablo", "carmen", "javier", "elena", "david", "sara"]
STAGES = ["docs_required", "docs_required", "docs_required", "approved"]


def write_csv(path: Path, rows: int) -> None:
    """A CRM-like export: semicolons, a few columns the rule does not use."""
    rng = random.Random(7)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, delimiter=";")
        out.writerow(
            [
                "First Name",
                "Last Name",
                "Application ID",
                "Stage",
                "Due Date",
                "Phone",
                "Email",
                "Notes",
            ]
        )
        for i in range(rows):
            name = NAMES[i % len(NAMES)]
            out.writerow(
                [
                    name,
                    "García",
                    100000 + i,
                    STAGES[i % 4],
                    "June 20",
                    f"+34 6{rng.randrange(10**8):08d}",
                    f"{name}{i}@example.com",
                    "called; will send documents",
                ]
            )


def bare_pass(path: Path) -> tuple[int, float]:
    """Rows and seconds of a plain DictReader over the file (the floor)."""
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f:
        count = sum(1 for _ in csv.DictReader(f, delimiter=";"))
    return count, time.perf_counter() - started


async def ingest(folder: Path, path: Path) -> tuple[Any, float, float]:
    """Summary, wall seconds and CPU seconds (all threads) of the full pipeline."""
    config = load_config(folder / "nextstep.yaml")
    rule = config.rules["loan-docs"]
    clock = SystemClock()
    runner = LedgerRunner(open_store(config.store))
    try:
        emit = make_emit(runner, [rule], clock, config.default_country)
        context = TriggerContext(runner.store, clock, str(folder), (rule.id,))
        trigger: Any = trigger_class("csv")(rule.trigger_config, context)
        started, cpu = time.perf_counter(), time.process_time()
        summary = await trigger.ingest(path, emit)
        return summary, time.perf_counter() - started, time.process_time() - cpu
    finally:
        runner.close()


def stages(folder: Path, path: Path, rows: int) -> dict[str, float]:
    """CPU µs per row of each stage, run one after the other in one thread (no overlap):
    the csv trigger's reading, the rules (condition, phone, templates), the ledger write."""
    config = load_config(folder / "nextstep.yaml")
    rule = config.rules["loan-docs"]
    store = open_store(f"sqlite:///{folder / 'stages.db'}")
    store.save_rule_version(rule.id, rule.version, rule.definition)
    spent = {"csv trigger": 0.0, "rules/render": 0.0, "ledger": 0.0}
    facts = inspect_file(path)
    read = 0
    with CsvFile(path, facts, CsvOptions()) as csv_file:
        batches = csv_file.batches()
        while read < rows:
            started = time.process_time()
            batch = next(batches, None)
            if batch is None:
                break
            events = [
                Event(d, {"kind": "csv", "row": n, "line": line}) for n, line, d in batch.rows
            ]
            spent["csv trigger"] += time.process_time() - started
            started = time.process_time()
            now = time.time()  # one per batch, as the engine does
            found = [evaluate(rule, e, now=now, default_country="ES") for e in events]
            items = [f for f in found if not isinstance(f, Skipped)]
            spent["rules/render"] += time.process_time() - started
            started = time.process_time()
            store.enqueue(items, [])
            spent["ledger"] += time.process_time() - started
            read += len(events)
    store.close()
    return {name: seconds / read * 1e6 for name, seconds in spent.items()}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nextstep-bench-"))
    try:
        (folder / "rules").mkdir()
        (folder / "inbox").mkdir()
        (folder / "nextstep.yaml").write_text(CONFIG)
        (folder / "rules" / "bench.yaml").write_text(RULE.replace("BATCH", str(args.batch)))
        path = folder / "inbox" / "export.csv"
        write_csv(path, args.rows)
        size = path.stat().st_size / 1e6
        bare_rows, bare_seconds = bare_pass(path)
        # As the daemon does once it has started: freeze what start-up made, collect less often.
        with tuned_gc():
            rss_before = psutil.Process().memory_info().rss / 2**20
            summary, seconds, cpu = asyncio.run(ingest(folder, path))
            peak = peak_rss_mb()
            per_row = stages(folder, path, min(args.rows, 100_000))
        ledger = (folder / "ledger.db").stat().st_size / 1e6
        per_notification = ledger * 1e6 / max(summary.queued, 1)
        rate = summary.rows / seconds
        print(f"file: {args.rows:,} rows, {size:.0f} MB ({folder})")
        print(f"csv.DictReader : {bare_rows / bare_seconds:>10,.0f} rows/s ({bare_seconds:.1f} s)")
        print(
            f"nextstep ingest: {rate:>10,.0f} rows/s ({seconds:.1f} s; "
            f"{summary.queued:,} queued, {summary.skipped:,} skipped, "
            f"{summary.errors:,} errors; ledger {ledger:.0f} MB)"
        )
        print(f"peak RSS: {peak:.0f} MB (RSS before ingest {rss_before:.0f} MB)")
        print(f"ledger: {per_notification:,.0f} bytes per notification (file size / queued)")
        print(f"ingest CPU: {cpu:.1f} s of all threads in {seconds:.1f} s wall")
        shown = ", ".join(f"{name} {us:.1f}" for name, us in per_row.items())
        print(f"CPU per row by stage, µs: {shown} (sum {sum(per_row.values()):.1f})")
        print(
            f"targets: >= 20,000 rows/s {'met' if rate >= 20_000 else 'MISSED'}; "
            f"< 200 MB {'met' if peak < 200 else 'MISSED'}"
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
