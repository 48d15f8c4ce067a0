"""``nextstep render RULE --event FILE|-``: what one event would send, without sending it."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from nextstep.engine.commands import config_option, load, read_mapping
from nextstep.engine.errors import UsageError
from nextstep.engine.ledger.base import NewNotification
from nextstep.engine.model import Event, Message
from nextstep.engine.plugins import channel_class
from nextstep.engine.rules.config import Config
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
@click.argument("rule_id", metavar="RULE")
@click.option(
    "--event",
    "event_source",
    required=True,
    metavar="FILE|-",
    help="The event as a JSON (or YAML) object; - reads standard input.",
)
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
    rule_id: str,
    event_source: str,
    trigger_source: str | None,
    now_text: str | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """Show what RULE makes of one event: whether it matches (and why not), the recipient, the
    filled text and the exact request the channel would make. Never sends anything."""
    config = load(config_path)
    rule = find_rule(config, rule_id)
    data = read_mapping(event_source, "event")
    trigger = (
        read_mapping(trigger_source, "trigger")
        if trigger_source
        else {"kind": rule.trigger_kind, "source": rule.source_key}
    )
    result = evaluate(
        rule, Event(data, trigger), now=parse_now(now_text), default_country=config.default_country
    )
    report = _report(config, rule, result)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        _print_text(report)


def _report(config: Config, rule: Rule, result: NewNotification | Skipped) -> dict[str, Any]:
    report: dict[str, Any] = {
        "rule": rule.id,
        "version": rule.version,
        "file": f"{rule.file}:{rule.line}",
    }
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


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()


def _print_text(report: Mapping[str, Any]) -> None:
    click.echo(f"rule:      {report['rule']} (version {report['version']}, {report['file']})")
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
