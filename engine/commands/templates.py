"""``nextstep templates [--check]``: list the approved templates of every channel whose provider
keeps them, and check every rule's sends (fallbacks included) through those channels against
them.

A channel has templates when its plug-in has the :class:`ListsTemplates` ability: the channel
lists them (``list_templates()``) and its class compares one of its compiled sends with them
(``check_send``). What is printed here is the same for every such channel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from nextstep.engine.clock import SystemClock
from nextstep.engine.commands import EXIT_INVALID, config_option, load
from nextstep.engine.errors import UsageError
from nextstep.engine.plugins import channel_class
from nextstep.engine.plugins.abilities import ListsTemplates, ProviderTemplate
from nextstep.engine.plural import plural
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.rule import Rule


@dataclass(frozen=True, slots=True)
class Finding:
    """The check of one send of one rule against its channel's templates."""

    rule_id: str
    file: str
    line: int
    path: str
    channel: str
    template: str
    language: str
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (notes do not count)."""
        return not self.errors

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}: rule {self.rule_id}: {self.path}: "
        head += f"{self.template} ({self.language}) on {self.channel}: "
        lines = [head + ("; ".join(self.errors) if self.errors else "ok")]
        lines.extend(f"    note: {note}" for note in self.notes)
        return "\n".join(lines)


def check_rules(
    rules: Iterable[Rule],
    templates: Mapping[str, Sequence[ProviderTemplate]],
    checkers: Mapping[str, ListsTemplates],
) -> list[Finding]:
    """Check every send of every rule whose channel was listed in ``templates`` (``checkers``:
    the channel's class, by channel name)."""
    findings = []
    for rule in sorted(rules, key=lambda r: r.id):
        for spec in [rule.send, *(step.send for step in rule.policy.fallback)]:
            if spec.channel not in templates:
                continue
            found = checkers[spec.channel].check_send(spec.compiled, templates[spec.channel])
            if found is not None:
                where = (rule.id, rule.file, rule.line, spec.path, spec.channel)
                findings.append(
                    Finding(*where, found.template, found.language, found.errors, found.notes)
                )
    return findings


def template_channels(config: Config) -> dict[str, ListsTemplates]:
    """The channels of ``config`` that keep templates: their classes by channel name."""
    found: dict[str, ListsTemplates] = {}
    for name, channel in config.channels.items():
        plugin = channel_class(channel.type)
        if isinstance(plugin, ListsTemplates):
            found[name] = plugin
    return found


async def _fetch(config: Config, names: Sequence[str]) -> dict[str, list[ProviderTemplate]]:
    listings: dict[str, list[ProviderTemplate]] = {}
    for name in names:
        settings = config.channels[name]
        channel = channel_class(settings.type)(name, settings.settings, clock=SystemClock())
        try:
            if not isinstance(channel, ListsTemplates):
                raise UsageError(f"channel {name} ({settings.type}) cannot list templates")
            listings[name] = list(await channel.list_templates())
        finally:
            await channel.aclose()
    return listings


def _selected(
    config: Config, able: Mapping[str, ListsTemplates], wanted: Sequence[str]
) -> list[str]:
    kinds = "/".join(sorted({config.channels[n].type for n in able})) or "template-listing"
    unknown = [n for n in wanted if n not in able]
    if unknown:
        known = ", ".join(able) or "none"
        raise UsageError(
            f"no {kinds} channel named {', '.join(unknown)} ({kinds} channels: {known})"
        )
    if not able:
        raise UsageError("the configuration has no channel that lists templates")
    return list(wanted) or list(able)


def _listing_lines(
    listings: Mapping[str, Sequence[ProviderTemplate]], everything: bool
) -> list[str]:
    lines = []
    for channel, templates in listings.items():
        shown = [t for t in templates if everything or t.approved]
        lines.append(f"{channel}: {plural(len(shown), 'template')}")
        for t in sorted(shown, key=lambda t: (t.name, t.language)):
            status = "" if t.approved else f"  [{t.status}]"
            lines.append(f"  {t.name:<28} {t.language:<6} {t.variables} var  {t.namespace}{status}")
    return lines


@click.command()
@config_option
@click.option(
    "--check",
    is_flag=True,
    help="Check every rule's sends through those channels against the list.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--channel",
    "channel_names",
    multiple=True,
    help="Only this channel (repeatable; default: every one that keeps templates).",
)
@click.option("--all", "everything", is_flag=True, help="Also list templates not approved.")
@click.pass_context
def templates(
    ctx: click.Context,
    config_path: Path,
    check: bool,
    as_json: bool,
    channel_names: tuple[str, ...],
    everything: bool,
) -> None:
    """List the approved templates of the channels that keep them; with --check, compare the
    rules with them (template, language, namespace, number of body variables). Exit 1 on any
    mismatch."""
    config = load(config_path)
    able = template_channels(config)
    listings = asyncio.run(_fetch(config, _selected(config, able, channel_names)))
    findings = check_rules(config.rules.values(), listings, able) if check else []
    failed = any(not f.ok for f in findings)
    if as_json:
        doc: dict[str, Any] = {
            "channels": {
                name: [t.as_dict() for t in ts if everything or t.approved]
                for name, ts in listings.items()
            },
        }
        if check:
            doc["checks"] = [{**asdict(f), "ok": f.ok} for f in findings]
            doc["ok"] = not failed
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    elif check:
        for finding in findings:
            click.echo(str(finding))
        bad = sum(1 for f in findings if not f.ok)
        good = len(findings) - bad
        click.echo(f"{plural(good, 'send')} {'matches' if good == 1 else 'match'}, {bad} do not")
    else:
        for line in _listing_lines(listings, everything):
            click.echo(line)
    if failed:
        ctx.exit(EXIT_INVALID)
