"""``nextstep templates [--check]``: list the 1MSG channels' approved templates, and check every
rule's ``send:`` (and fallback sends) against them: the template exists and is approved for its
language, the namespace matches, and the rule fills as many body variables as it has.

The channel is built from the registry (``nextstep.engine.plugins.channels()``) and asked for
``list_templates()``; the comparison below is pure.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import click

from nextstep.engine.clock import SystemClock
from nextstep.engine.commands import EXIT_INVALID, config_option, load
from nextstep.engine.errors import UsageError
from nextstep.engine.plugins import channel_class
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.rule import ONEMSG, Rule, SendSpec

_RULE_VARIABLE = re.compile(r"<<\s*(\d+)\s*>>")
_META_VARIABLE = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class TemplateLike(Protocol):
    """What the check needs of a provider template (``onemsg.templates.TemplateInfo``)."""

    name: str
    language: str
    namespace: str
    status: str
    body: str
    variables: int

    @property
    def approved(self) -> bool:
        """True when the template can be sent."""
        ...

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        ...


@dataclass(frozen=True, slots=True)
class Finding:
    """The check of one 1MSG send of one rule."""

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


def onemsg_sends(rule: Rule) -> list[SendSpec]:
    """The rule's 1MSG sends: its ``send:`` and every fallback's."""
    specs = [rule.send, *(step.send for step in rule.policy.fallback)]
    return [spec for spec in specs if spec.channel_type == ONEMSG]


def _source(spec: SendSpec, key: str) -> tuple[str, bool]:
    """A send field's source text and whether it is rendered per event."""
    compiled = spec.fields.get(key)
    if compiled is None:
        return "", False
    return compiled.source, compiled.template is not None


def check_send(rule: Rule, spec: SendSpec, templates: Sequence[TemplateLike]) -> Finding:
    """Compare one 1MSG send with the channel's templates."""
    name, name_varies = _source(spec, "template")
    language, language_varies = _source(spec, "language")
    namespace, _ = _source(spec, "namespace")
    where = Finding(rule.id, rule.file, rule.line, spec.path, spec.channel, name, language)
    if name_varies:
        return _with(where, notes=("the template name is rendered per event: not checked",))
    same_name = [t for t in templates if t.name == name]
    if language_varies:
        candidates = [t for t in same_name if t.approved]
        notes: tuple[str, ...] = (
            "the language is rendered per event: checked against every approved language "
            f"({', '.join(sorted(t.language for t in candidates)) or 'none'})",
        )
        if not candidates:
            return _with(where, errors=(f"no approved template named {name}",), notes=notes)
    else:
        candidates = [t for t in same_name if t.language == language]
        notes = ()
        if not candidates:
            others = ", ".join(sorted(t.language for t in same_name if t.approved))
            hint = f" (approved languages: {others})" if others else ""
            return _with(where, errors=(f"no template {name} in {language}{hint}",))
        if not candidates[0].approved:
            return _with(
                where,
                errors=(
                    f"template {name} ({language}) is {candidates[0].status or 'not approved'}",
                ),
            )
    errors, more_notes = _compare(spec, namespace, candidates, per_language=language_varies)
    return _with(where, errors=errors, notes=notes + more_notes)


def _compare(
    spec: SendSpec, namespace: str, candidates: Sequence[TemplateLike], *, per_language: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Namespace, variable count and text of a send against each candidate template."""
    errors: list[str] = []
    notes: list[str] = []
    wanted = len(spec.params)
    for template in candidates:
        label = f" ({template.language})" if per_language else ""
        if namespace and template.namespace and namespace != template.namespace:
            errors.append(
                f"namespace {namespace} differs from the template's {template.namespace}{label}"
            )
        if wanted != template.variables:
            errors.append(
                f"the rule fills {wanted} body variable{'s' if wanted != 1 else ''}, "
                f"the template has {template.variables}{label}"
            )
        if not per_language and spec.text is not None and not _same_text(spec.text, template.body):
            notes.append("the rule's text differs from the approved body (previews will differ)")
    return tuple(errors), tuple(notes)


def _same_text(rule_text: str, body: str) -> bool:
    as_meta = _RULE_VARIABLE.sub(lambda m: "{{" + m.group(1) + "}}", rule_text)
    normal = _META_VARIABLE.sub(lambda m: "{{" + m.group(1) + "}}", body)
    return " ".join(as_meta.split()) == " ".join(normal.split())


def _with(
    finding: Finding, *, errors: tuple[str, ...] = (), notes: tuple[str, ...] = ()
) -> Finding:
    return Finding(
        finding.rule_id,
        finding.file,
        finding.line,
        finding.path,
        finding.channel,
        finding.template,
        finding.language,
        errors,
        notes,
    )


def check_rules(
    rules: Iterable[Rule], templates: Mapping[str, Sequence[TemplateLike]]
) -> list[Finding]:
    """Check every 1MSG send of every rule whose channel was listed in ``templates``."""
    findings = []
    for rule in sorted(rules, key=lambda r: r.id):
        for spec in onemsg_sends(rule):
            if spec.channel in templates:
                findings.append(check_send(rule, spec, templates[spec.channel]))
    return findings


async def _fetch(config: Config, names: Sequence[str]) -> dict[str, list[TemplateLike]]:
    listings: dict[str, list[TemplateLike]] = {}
    for name in names:
        settings = config.channels[name]
        channel = channel_class(settings.type)(name, settings.settings, clock=SystemClock())
        try:
            lister = getattr(channel, "list_templates", None)
            if lister is None:
                raise UsageError(f"channel {name} ({settings.type}) cannot list templates")
            listings[name] = list(await lister())
        finally:
            await channel.aclose()
    return listings


def _selected(config: Config, wanted: Sequence[str]) -> list[str]:
    onemsg = [c.name for c in config.channels.values() if c.type == ONEMSG]
    unknown = [n for n in wanted if n not in onemsg]
    if unknown:
        known = ", ".join(onemsg) or "none"
        raise UsageError(f"no 1msg channel named {', '.join(unknown)} (1msg channels: {known})")
    if not onemsg:
        raise UsageError("the configuration has no channel of type 1msg")
    return list(wanted) or onemsg


def _listing_lines(listings: Mapping[str, Sequence[TemplateLike]], everything: bool) -> list[str]:
    lines = []
    for channel, templates in listings.items():
        shown = [t for t in templates if everything or t.approved]
        lines.append(f"{channel}: {len(shown)} template{'s' if len(shown) != 1 else ''}")
        for t in sorted(shown, key=lambda t: (t.name, t.language)):
            status = "" if t.approved else f"  [{t.status}]"
            lines.append(f"  {t.name:<28} {t.language:<6} {t.variables} var  {t.namespace}{status}")
    return lines


@click.command()
@config_option
@click.option("--check", is_flag=True, help="Check every rule's 1MSG sends against the list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--channel",
    "channel_names",
    multiple=True,
    help="Only this 1MSG channel (repeatable; default: every one).",
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
    """List the 1MSG channels' approved templates; with --check, compare the rules with them
    (template, language, namespace, number of body variables). Exit 1 on any mismatch."""
    config = load(config_path)
    listings = asyncio.run(_fetch(config, _selected(config, channel_names)))
    findings = check_rules(config.rules.values(), listings) if check else []
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
        click.echo(f"{len(findings) - bad} sends match, {bad} do not")
    else:
        for line in _listing_lines(listings, everything):
            click.echo(line)
    if failed:
        ctx.exit(EXIT_INVALID)
