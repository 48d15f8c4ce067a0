"""``nextstep render RULE --event FILE|-``: what one event would send (and each fallback, with a
sample failure), without sending it; ``--all`` offers the event to every rule."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from nextstep.engine.commands import config_option, load, read_mapping
from nextstep.engine.errors import RenderError, UsageError
from nextstep.engine.ledger.base import NewNotification
from nextstep.engine.model import Event, Message
from nextstep.engine.plugins import channel_class
from nextstep.engine.plural import plural
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.examples import render_fallback
from nextstep.engine.rules.render import Skipped, evaluate
from nextstep.engine.rules.rule import Rule
from nextstep.engine.rules.schema import did_you_mean


def find_rule(config: Config, rule_id: str) -> Rule:
    """The rule ``rule_id``; a usage error naming the closest id when there is none."""
    rule = config.rules.get(rule_id)
    if rule is None:
        hint = did_you_mean(rule_id, config.rules) or f" (rules: {', '.join(sorted(config.rules))})"
        raise UsageError(f"no rule '{rule_id}'{hint}")
    return rule


def parse_now(text: str | None) -> float:
    """``--now`` as Unix seconds (ISO date-time, UTC when it has no offset), else the time now."""
    if text is None:
        return time.time()
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--now {text!r} is not an ISO date-time (2026-06-20T10:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)).timestamp()


def payload(config: Config, message: Message) -> tuple[str, Any]:
    """(what the request goes to, its exact body), from the channel's own preview: never a
    secret."""
    channel = config.channels[message.channel]
    preview = channel_class(channel.type).preview(message, channel.settings)
    return preview.target, preview.body


@click.command()
@click.argument("rule_id", metavar="[RULE]", required=False)
@click.option(
    "--event",
    "event_source",
    required=True,
    metavar="FILE|-",
    help="The event as a JSON (or YAML) object; - reads standard input.",
)
@click.option("--all", "every_rule", is_flag=True, help="Offer the event to every rule.")
@click.option(
    "--trigger",
    "trigger_source",
    metavar="FILE",
    help="What `trigger` holds for the templates (default: kind and source).",
)
@click.option("--now", "now_text", metavar="ISO", help="The time to render at (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@config_option
def render(
    rule_id: str | None,
    event_source: str,
    every_rule: bool,
    trigger_source: str | None,
    now_text: str | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """Show what RULE makes of one event: whether it matches (and why not), the recipient, the
    filled text, the exact request the channel would make, and each fallback's (with a sample
    failure). With --all, offer the event to every rule and show which match. Never sends
    anything."""
    if every_rule == (rule_id is not None):
        raise UsageError("name a RULE, or give --all to offer the event to every rule")
    config = load(config_path)
    data = read_mapping(event_source, "event")
    given = read_mapping(trigger_source, "trigger") if trigger_source else None
    now = parse_now(now_text)
    if rule_id is not None:
        rule = find_rule(config, rule_id)
        report = rule_report(config, rule, data, given, now, errors_raise=True)
        if as_json:
            click.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        else:
            _print_text(report)
        return
    rules = sorted(config.rules.values(), key=lambda r: (r.file, r.line))
    reports = [rule_report(config, rule, data, given, now) for rule in rules]
    if as_json:
        click.echo(json.dumps(reports, indent=2, ensure_ascii=False, default=str))
    else:
        print_routes(reports)


def rule_report(
    config: Config,
    rule: Rule,
    data: Mapping[str, Any],
    trigger: Mapping[str, Any] | None,
    now: float,
    *,
    errors_raise: bool = False,
) -> dict[str, Any]:
    """What ``rule`` makes of one event, as ``render`` prints it; a render error of the main
    send is raised with ``errors_raise``, else reported (``matches`` None)."""
    event = Event(data, trigger or {"kind": rule.trigger_kind, "source": rule.source_key})
    try:
        result = evaluate(rule, event, now=now, default_country=config.default_country)
    except RenderError as exc:
        if errors_raise:
            raise
        return {**_head(rule), "matches": None, "error": f"{exc.field}: {exc.reason}"}
    report = _report(config, rule, result)
    if report["matches"]:
        report["fallbacks"] = [
            _fallback(config, rule, index, event, now) for index in range(len(rule.policy.fallback))
        ]
    return report


def _head(rule: Rule) -> dict[str, Any]:
    return {"rule": rule.id, "version": rule.version, "file": f"{rule.file}:{rule.line}"}


def _report(config: Config, rule: Rule, result: NewNotification | Skipped) -> dict[str, Any]:
    report = _head(rule)
    if isinstance(result, Skipped):
        return {**report, "matches": False, "reason": result.reason}
    message = Message(result.channel, result.recipient, result.fields)
    target, body = payload(config, message)
    channel = config.channels[result.channel]
    report.update(
        matches=True,
        recipient=result.recipient,
        channel=f"{channel.name} ({channel.type})",
        text=result.fields.get("text"),
        dedupe_key=result.dedupe_key,
        supersede_key=result.supersede_key,
        not_before=_iso(result.not_before),
        valid_until=_iso(result.valid_until),
        request=target,
        payload=body,
    )
    return report


def _fallback(config: Config, rule: Rule, index: int, event: Event, now: float) -> dict[str, Any]:
    """One fallback step's preview, rendered with a sample failure that fits its ``on``."""
    step = rule.policy.fallback[index]
    report: dict[str, Any] = {"step": index, "on": sorted(step.on)}
    try:
        message, failure = render_fallback(
            rule, index, event, now=now, default_country=config.default_country
        )
    except RenderError as exc:
        return {**report, "error": f"{exc.field}: {exc.reason}"}
    target, body = payload(config, message)
    channel = config.channels[message.channel]
    return {
        **report,
        "failure": failure,
        "recipient": message.to,
        "channel": f"{channel.name} ({channel.type})",
        "text": message.fields.get("text"),
        "request": target,
        "payload": body,
    }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()


def _print_text(report: Mapping[str, Any]) -> None:
    click.echo(f"rule:      {report['rule']} (version {report['version']}, {report['file']})")
    if report["matches"] is None:
        click.echo(f"matches:   error ({report['error']})")
        return
    if not report["matches"]:
        click.echo(f"matches:   no ({report['reason']})")
        return
    click.echo("matches:   yes")
    for label, key in (
        ("recipient", "recipient"),
        ("channel", "channel"),
        ("text", "text"),
        ("dedupe", "dedupe_key"),
        ("supersedes", "supersede_key"),
        ("not before", "not_before"),
        ("valid until", "valid_until"),
    ):
        if report.get(key) is not None:
            click.echo(f"{label + ':':<10} {report[key]}")
    click.echo(f"request:   {report['request']}")
    click.echo(json.dumps(report["payload"], indent=2, ensure_ascii=False, default=str))
    for step in report.get("fallbacks", ()):
        _print_fallback(step)


def _print_fallback(step: Mapping[str, Any]) -> None:
    head = f"fallback:  policy.fallback[{step['step']}] on {', '.join(step['on'])}"
    if "error" in step:
        click.echo(f"{head}: cannot render ({step['error']})")
        return
    failure = step["failure"]
    shown = failure["status"] + (f", {failure['class']}" if failure.get("class") else "")
    click.echo(f"{head} (sample failure: {shown}: {failure['reason']})")
    for label, key in (("recipient", "recipient"), ("channel", "channel"), ("text", "text")):
        if step.get(key):
            click.echo(f"  {label + ':':<10} {step[key]}")
    click.echo(f"  request:   {step['request']}")
    click.echo(f"  payload:   {json.dumps(step['payload'], ensure_ascii=False, default=str)}")


def print_routes(reports: Sequence[Mapping[str, Any]]) -> None:
    """One line per rule: does it match the event, to whom through which channel, or why not
    (``amtool config routes test``'s question: where does this event go?)."""
    width = max((len(r["rule"]) for r in reports), default=4)
    for report in reports:
        if report["matches"] is None:
            outcome = f"error    {report['error']}"
        elif report["matches"]:
            outcome = f"matches  → {report['recipient'] or '-'} via {report['channel']}"
            steps = len(report.get("fallbacks", ()))
            outcome += f", {plural(steps, 'fallback')}" if steps else ""
        else:
            outcome = f"no       {report['reason']}"
        click.echo(f"{report['rule']:<{width}}  {outcome}")
    matched = sum(1 for r in reports if r["matches"])
    click.echo(
        f"{matched} of {plural(len(reports), 'rule')} {'matches' if matched == 1 else 'match'}"
    )
