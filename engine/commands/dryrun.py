"""``nextstep ingest FILE --rule RULE --dry-run``: what the file would do, writing nothing.

The file is read by the same trigger, with the same settings, as a real ingest (encoding,
delimiter, header mapping; the ``ReadsRows`` ability), and every row is offered to the rule;
nothing is written: no ledger (not even created), no errors file, the file not moved. Each row
is printed as matched (with the recipient), skipped and why, a duplicate of an earlier row of
the file (same dedupe key) or an error; the first ``--show`` matched rows with the message
they would send; then a summary. ``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from nextstep.engine.commands.render import payload
from nextstep.engine.errors import NextstepError, RenderError, UsageError
from nextstep.engine.model import Message
from nextstep.engine.plugins import FileRow, ReadsRows, trigger_class
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.render import Skipped, evaluate
from nextstep.engine.rules.rule import Rule


@dataclass(slots=True)
class DrySummary:
    """Counts of a dry run."""

    rows: int = 0
    matched: int = 0
    skipped: int = 0
    duplicates: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)  # file-level: the file would fail
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "matched": self.matched,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "problems": self.problems,
            "notes": self.notes,
        }


def dry_run(
    config: Config, rule: Rule, file: Path, kind: str, settings: Mapping[str, Any], show: int
) -> tuple[DrySummary, Iterator[dict[str, Any]]]:
    """The summary (filled as the rows are consumed) and each row's report."""
    plugin = trigger_class(kind)
    if not isinstance(plugin, ReadsRows):
        raise UsageError(f"the {kind} trigger cannot read a file without ingesting it")
    summary = DrySummary()
    return summary, _reports(config, rule, plugin.read_rows(settings, file), summary, show)


def _reports(
    config: Config, rule: Rule, rows: Iterator[FileRow], summary: DrySummary, show: int
) -> Iterator[dict[str, Any]]:
    now = time.time()
    seen: dict[str, int] = {}
    for row in rows:
        if row.note:
            summary.notes.append(row.note)
            continue
        if row.event is None:
            if row.row == 0:
                summary.problems.append(row.problem)
                continue
            summary.rows += 1
            summary.errors += 1
            yield {"row": row.row, "line": row.line, "status": "error", "reason": row.problem}
            continue
        summary.rows += 1
        report: dict[str, Any] = {"row": row.row, "line": row.line}
        try:
            found = evaluate(rule, row.event, now=now, default_country=config.default_country)
        except RenderError as exc:
            summary.errors += 1
            yield {**report, "status": "error", "reason": f"{exc.field}: {exc.reason}"}
            continue
        except NextstepError as exc:
            summary.errors += 1
            yield {**report, "status": "error", "reason": str(exc)}
            continue
        if isinstance(found, Skipped):
            summary.skipped += 1
            yield {**report, "status": "skipped", "reason": found.reason}
            continue
        key = found.dedupe_key
        if key is not None and key in seen:
            summary.duplicates += 1
            reason = f"duplicate of row {seen[key]} (dedupe key {key!r})"
            yield {**report, "status": "duplicate", "reason": reason}
            continue
        if key is not None:
            seen[key] = row.row
        summary.matched += 1
        report.update(status="matched", recipient=found.recipient, channel=found.channel)
        if summary.matched <= show:
            message = Message(found.channel, found.recipient, found.fields)
            target, body = payload(config, message)
            report.update(text=found.fields.get("text"), request=target, payload=body)
        yield report


def print_text(
    file: Path, rule: Rule, summary: DrySummary, reports: Iterator[dict[str, Any]]
) -> None:
    """Each row on a line (a matched one within ``--show`` with its message), then the
    summary."""
    click.echo(f"{file}: dry run for rule {rule.id} (nothing is written)")
    for report in reports:
        where = f"row {report['row']} (line {report['line']})"
        status = report["status"]
        if status == "matched":
            click.echo(f"  {where}: matched → {report['recipient'] or '(no recipient)'}")
            if "request" in report:
                if report.get("text"):
                    click.echo(f"      text: {report['text']}")
                click.echo(f"      {report['request']}")
                click.echo(
                    "      " + json.dumps(report["payload"], ensure_ascii=False, default=str)
                )
        else:
            click.echo(f"  {where}: {status}: {report['reason']}")
    for note in summary.notes:
        click.echo(f"  note: {note}")
    for problem in summary.problems:
        click.echo(f"  file: {problem}")
    click.echo(
        f"{summary.rows:,} rows: {summary.matched:,} matched, {summary.skipped:,} skipped, "
        f"{summary.duplicates:,} duplicates, {summary.errors:,} errors"
    )


def print_json(
    file: Path, rule: Rule, summary: DrySummary, reports: Iterator[dict[str, Any]]
) -> None:
    """One JSON document: the file, the rule, every row's report and the summary."""
    rows = list(reports)
    doc = {"file": str(file), "rule": rule.id, "summary": summary.as_dict(), "rows": rows}
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
