"""``nextstep send RULE --event FILE|-``: one event through the full pipeline.

The event is matched and rendered by RULE, written to the configured ledger (a duplicate is
recorded as skipped), then, unless ``--no-wait``, sent through the rule's channel with the
dispatcher, retries included, until it is accepted or has failed for good. Only this
notification is touched: whatever else the ledger holds is left to the daemon.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from nextstep.engine.clock import Clock, SystemClock
from nextstep.engine.commands import EXIT_INVALID, config_option, load, read_mapping
from nextstep.engine.commands.ingest import wait_for_sending
from nextstep.engine.commands.render import find_rule
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Event, State
from nextstep.engine.plugins import RuleResult
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.rule import Rule

# What ends the command well: accepted, or nothing to send (the rule did not apply).
_GOOD = frozenset({State.SENT.value, State.DELIVERED.value, State.READ.value, "skipped"})


@dataclass
class SendReport:
    """What ``nextstep send`` prints."""

    rule: str
    state: str  # a ledger state, or skipped / error when nothing was queued
    id: int | None = None
    reason: str = ""
    provider_id: str | None = None
    attempts: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "id": self.id,
            "rule": self.rule,
            "state": self.state,
            "reason": self.reason,
            "provider_id": self.provider_id,
            "attempts": self.attempts,
            "notes": self.notes,
        }

    def line(self) -> str:
        """One line for a person."""
        head = f"#{self.id} {self.state}" if self.id is not None else self.state
        detail = self.provider_id if self.state == State.SENT.value else self.reason
        return f"{head} ({detail})" if detail else head

    @property
    def ok(self) -> bool:
        """True when the command should exit 0."""
        return self.state in _GOOD or (self.state == State.QUEUED.value and not self.notes)


@click.command()
@click.argument("rule_id", metavar="RULE")
@click.option(
    "--event", "event_source", required=True, metavar="FILE|-", help="The event (JSON or YAML)."
)
@click.option("--no-wait", is_flag=True, help="Return once queued; the daemon sends it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_option
def send(rule_id: str, event_source: str, no_wait: bool, as_json: bool, config_path: Path) -> None:
    """Push one event through RULE: queue it, send it, wait for the outcome."""
    config = load(config_path)
    rule = find_rule(config, rule_id)
    data = read_mapping(event_source, "event")
    event = Event(data, {"kind": "cli", "source": event_source})
    report = asyncio.run(send_event(config, rule, event, wait=not no_wait))
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        click.echo(report.line())
        for note in report.notes:
            click.echo(note, err=True)
    if not report.ok:
        raise SystemExit(EXIT_INVALID)


async def send_event(
    config: Config, rule: Rule, event: Event, *, wait: bool = True, clock: Clock | None = None
) -> SendReport:
    """Queue ``event`` for ``rule`` in the configured ledger and (when ``wait``) send it."""
    clock = clock or SystemClock()
    runner = LedgerRunner(open_store(config.store))
    try:
        emit = make_emit(runner, [rule], clock, config.default_country)
        (result,) = await emit([event], [])
        queued = result.results[0]
        if queued.notification_id is None:
            return SendReport(rule.id, queued.status, reason=queued.reason)
        notes: list[str] = []
        if wait and queued.status == "queued":
            notes = await wait_for_sending(config, rule, runner, [queued.notification_id], clock)
        return await _report(runner, queued, notes)
    finally:
        await asyncio.to_thread(runner.close)


async def _report(runner: LedgerRunner, queued: RuleResult, notes: list[str]) -> SendReport:
    nid = queued.notification_id
    row = await runner.call(runner.store.get, nid or 0)
    if row is None:  # removed under our feet: say what we know
        return SendReport(queued.rule_id, queued.status, nid, queued.reason, notes=notes)
    return SendReport(
        row.rule_id,
        row.state.value,
        row.id,
        row.reason,
        row.provider_id,
        row.attempts,
        notes,
    )
