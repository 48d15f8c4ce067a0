"""Loading ``nextstep.yaml`` and every rule file it points at, reporting every problem at once.

``load_config(path)`` returns a :class:`Config` with compiled rules, or raises
:class:`ConfigError` listing each problem as ``FILE:LINE:COL: rule ID: path: message``.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import phonenumbers

from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import ConfigError, Problem
from nextstep.engine.plugins import PluginUnavailable, channel_class, channel_types
from nextstep.engine.plural import plural
from nextstep.engine.rules.blocks import as_text, channel_issues, rule_issues
from nextstep.engine.rules.compiler import Issue, build_rule
from nextstep.engine.rules.console_config import ConsoleConfig, console_config
from nextstep.engine.rules.examples import fallback_problems
from nextstep.engine.rules.rule import Rule
from nextstep.engine.rules.schema import Kind, SchemaIssue, did_you_mean, issues
from nextstep.engine.rules.yamlload import Loaded, PathKey, format_path, load_file

DEFAULT_STORE = "sqlite:///nextstep.db"
DEFAULT_LISTEN = "127.0.0.1:8787"
DEFAULT_MAX_BODY = 1_048_576  # the one default limit of HTTP request bodies (server.max_body)
MIN_SECRET = 16  # characters of server.event_token, webhook_secret and optout_token


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """A named channel of ``nextstep.yaml``; ``settings`` is its mapping as written (with
    ``${VAR}`` replaced; ids and secrets as text)."""

    name: str
    type: str
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP server: where it listens and the secrets its endpoints check."""

    host: str = "127.0.0.1"
    port: int = 8787
    event_token: str | None = None
    webhook_secret: str | None = None
    max_body: int = DEFAULT_MAX_BODY  # what event and ack routes accept
    public_url: str | None = None  # where providers reach this server
    console: ConsoleConfig | None = None  # the web console at /ui, when configured


@dataclass(frozen=True, slots=True)
class StatusConfig:
    """When to ask a channel about a message that has no status yet (status lookups)."""

    poll_after: float = 300.0
    poll_every: float = 60.0


@dataclass(frozen=True, eq=False, slots=True)
class Config:
    """A loaded, valid configuration."""

    path: Path
    base_dir: Path
    store: str
    rules: dict[str, Rule]
    channels: dict[str, ChannelConfig]
    default_country: str | None
    server: ServerConfig = field(default_factory=ServerConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    rule_files: tuple[Path, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)  # the whole file, interpolated
    loaded_at: float = 0.0  # Unix time the files began to be read (a later save is unseen)


def display(path: Path) -> str:
    """A path as problems show it: relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


class _Collector:
    """Gathers located problems across the config file and every rule file."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def located(
        self,
        loaded: Loaded,
        path: PathKey,
        message: str,
        *,
        at_key: bool = False,
        rule_id: str | None = None,
        shown: str | None = None,
    ) -> None:
        mark = loaded.positions.key(path) if at_key else loaded.positions.of(path)
        where = format_path(path) if shown is None else shown
        self.problems.append(Problem(loaded.file, mark.line, mark.col, rule_id, where, message))

    def schema(self, loaded: Loaded, kind: Kind) -> list[SchemaIssue]:
        """Report the core schema's problems of a file; returns them."""
        return self.report(loaded, issues(loaded.data, kind), rules=kind == "rules")

    def report(
        self, loaded: Loaded, found: list[SchemaIssue], *, rules: bool = False
    ) -> list[SchemaIssue]:
        """Report schema issues of a file (of a rule file: named by their rule)."""
        for issue in found:
            rule_id, shown = _rule_scope(loaded.data, issue.path) if rules else (None, None)
            self.located(
                loaded, issue.path, issue.message, at_key=issue.at_key, rule_id=rule_id, shown=shown
            )
        return found


def _rule_scope(data: Any, path: PathKey) -> tuple[str | None, str | None]:
    """(rule id, path inside the rule) for a path under ``rules[i]`` of a named rule."""
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rules = data.get("rules") if isinstance(data, Mapping) else None
        if isinstance(rules, list) and path[1] < len(rules) and isinstance(rules[path[1]], Mapping):
            rule_id = rules[path[1]].get("id")
            if isinstance(rule_id, str):
                return rule_id, format_path(path[2:])
    return None, None


def _scoped(loaded: Loaded) -> list[Problem]:
    """The reader's problems (duplicate keys, missing variables) named by their rule."""
    out = list(loaded.problems)
    for i, path in enumerate(loaded.problem_paths):
        rule_id, shown = _rule_scope(loaded.data, path)
        if rule_id is not None and shown is not None:
            out[i] = replace(out[i], rule_id=rule_id, path=shown)
    return out


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration and all its rules; ConfigError lists every problem."""
    environ = os.environ if env is None else env
    loaded_at = time.time()
    config_path = Path(path).absolute()
    base_dir = config_path.parent
    collector = _Collector()
    loaded = load_file(config_path, environ, display=display(config_path))
    collector.problems.extend(loaded.problems)
    data = loaded.data if loaded.data is not None else {}
    if loaded.data is not None:
        collector.schema(loaded, "config")
    settings = data if isinstance(data, Mapping) else {}
    channels = _channels(settings.get("channels"), loaded, collector)
    default_country = _country(settings.get("default_country"), loaded, collector)
    server = _server(settings.get("server"), loaded, collector)
    status = _status(settings.get("status"), loaded, collector)
    files = _rule_files(settings.get("rules", "rules/"), base_dir, loaded, collector)
    types = {c.name: c.type for c in channels.values()}
    rules = _load_rules(files, types, environ, collector, base_dir, default_country)
    if collector.problems:
        raise ConfigError(collector.problems)
    store = settings.get("store", DEFAULT_STORE)
    return Config(
        path=config_path,
        base_dir=base_dir,
        store=resolve_store(str(store), base_dir),
        rules=rules,
        channels=channels,
        default_country=default_country,
        server=server,
        status=status,
        rule_files=tuple(files),
        settings=settings,
        loaded_at=loaded_at,
    )


def store_url(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> str:
    """The ledger URL of ``nextstep.yaml`` alone (resolved like :func:`load_config`'s), read
    even when the rules or other settings have problems: what ``nextstep status`` needs, most of
    all when the rules are broken. ConfigError when the file or its ``store:`` cannot be read."""
    config_path = Path(path).absolute()
    loaded = load_file(
        config_path, os.environ if env is None else env, display=display(config_path)
    )
    if loaded.data is None:
        raise ConfigError(loaded.problems or [Problem(loaded.file, 1, 1, None, "", "is empty")])
    mine = [
        p
        for p, at in zip(loaded.problems, loaded.problem_paths, strict=True)
        if at[:1] == ("store",)
    ]
    store = loaded.data.get("store", DEFAULT_STORE) if isinstance(loaded.data, Mapping) else None
    if mine or not isinstance(store, str):
        mark = loaded.positions.of(("store",))
        raise ConfigError(
            mine or [Problem(loaded.file, mark.line, mark.col, None, "store", "expected a URL")]
        )
    return resolve_store(store, config_path.parent)


def resolve_store(url: str, base_dir: Path) -> str:
    """``sqlite:///nextstep.db`` is relative to the config file's folder; other URLs as written."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite") or not rest or rest.startswith("/"):
        return url
    if rest.startswith(":memory:") or rest.startswith("file:"):
        return url
    return f"{scheme}:///{base_dir / rest}"


def _channels(raw: Any, loaded: Loaded, collector: _Collector) -> dict[str, ChannelConfig]:
    if not isinstance(raw, Mapping):
        return {}
    known = channel_types()
    out: dict[str, ChannelConfig] = {}
    for name, spec in raw.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
            continue
        kind = spec["type"]
        settings = dict(spec)
        if kind not in known:
            hint = did_you_mean(kind, known) or f" (known: {', '.join(known)})"
            collector.located(
                loaded, ("channels", name, "type"), f"unknown channel type '{kind}'{hint}"
            )
        else:
            try:
                plugin = channel_class(kind)
            except PluginUnavailable as exc:
                collector.located(loaded, ("channels", name, "type"), str(exc))
            else:
                collector.report(loaded, channel_issues(str(name), kind, plugin, spec))
                settings = as_text(plugin, spec)
        out[str(name)] = ChannelConfig(str(name), kind, settings)
    return out


def _country(raw: Any, loaded: Loaded, collector: _Collector) -> str | None:
    if not isinstance(raw, str) or len(raw) != 2:
        return None
    region = raw.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        collector.located(
            loaded, ("default_country",), f"'{raw}' is not a region phone numbers know"
        )
    return region


def _server(raw: Any, loaded: Loaded, collector: _Collector) -> ServerConfig:
    if not isinstance(raw, Mapping):
        return ServerConfig()
    host, _, port_text = str(raw.get("listen", DEFAULT_LISTEN)).rpartition(":")
    port = int(port_text) if port_text.isdecimal() else 0
    if port > 65535:
        collector.located(loaded, ("server", "listen"), f"port {port} is not a TCP port (0-65535)")

    def text(key: str) -> str | None:
        value = raw.get(key)
        return None if value is None or value == "" else str(value)

    for key in ("event_token", "webhook_secret", "optout_token"):
        secret = text(key)
        if secret is not None and len(secret) < MIN_SECRET:
            collector.located(
                loaded,
                ("server", key),
                f"is {plural(len(secret), 'character')} long; "
                f"a secret needs at least {MIN_SECRET} "
                "(a random one: python -c 'import secrets; print(secrets.token_urlsafe(24))')",
            )

    max_body = raw.get("max_body")
    return ServerConfig(
        host=host.strip("[]") or "127.0.0.1",
        port=port,
        event_token=text("event_token"),
        webhook_secret=text("webhook_secret"),
        max_body=max_body if isinstance(max_body, int) else DEFAULT_MAX_BODY,
        public_url=text("public_url"),
        console=console_config(
            raw.get("console"), lambda path, message: collector.located(loaded, path, message)
        ),
    )


def _status(raw: Any, loaded: Loaded, collector: _Collector) -> StatusConfig:
    if not isinstance(raw, Mapping):
        return StatusConfig()
    values: dict[str, float] = {}
    for key in ("poll_after", "poll_every"):
        try:
            if key in raw:
                values[key] = parse_duration(raw[key])
        except (ValueError, TypeError):
            continue  # the schema has said why
    return StatusConfig(**values)


def _rule_files(raw: Any, base_dir: Path, loaded: Loaded, collector: _Collector) -> list[Path]:
    specs = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    files: list[Path] = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, str):
            continue
        target = base_dir / spec
        if glob.has_magic(spec):
            found = [Path(p) for p in sorted(glob.glob(str(target), recursive=True))]
            matches = [p for p in found if p.is_file()]
        elif target.is_dir():
            matches = sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
        elif target.is_file():
            matches = [target]
        else:
            where: PathKey = ("rules", i) if isinstance(raw, list) else ("rules",)
            collector.located(
                loaded, where, f"'{spec}' is neither a rule file, a folder nor a glob that matches"
            )
            continue
        files.extend(p.absolute() for p in matches if p.absolute() not in files)
    return files


def _load_rules(
    files: list[Path],
    channels: Mapping[str, str],
    env: Mapping[str, str],
    collector: _Collector,
    base_dir: Path,
    default_country: str | None = None,
) -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    first_seen: dict[str, str] = {}
    for path in files:
        loaded = load_file(path, env, display=display(path))
        collector.problems.extend(_scoped(loaded))
        if loaded.data is None:
            continue
        schema_issues = collector.schema(loaded, "rules")
        schema_issues += collector.report(
            loaded, rule_issues(loaded.data, channels, base_dir), rules=True
        )
        definitions = loaded.data.get("rules") if isinstance(loaded.data, Mapping) else None
        for i, definition in enumerate(definitions if isinstance(definitions, list) else []):
            if not isinstance(definition, Mapping):
                continue
            rule = _load_rule(loaded, i, definition, channels, schema_issues, collector)
            if rule is not None and not _example_problems(
                loaded, i, rule, default_country, collector
            ):
                rule = None
            rule_id = definition.get("id")
            if not isinstance(rule_id, str):
                continue
            mark = loaded.positions.of(("rules", i, "id"))
            if rule_id in first_seen:
                collector.located(
                    loaded,
                    ("rules", i, "id"),
                    f"duplicate rule id (first defined at {first_seen[rule_id]})",
                    rule_id=rule_id,
                    shown="id",
                )
                continue
            first_seen[rule_id] = f"{loaded.file}:{mark.line}"
            if rule is not None:
                rules[rule_id] = rule
    return rules


def _load_rule(
    loaded: Loaded,
    index: int,
    definition: Mapping[str, Any],
    channels: Mapping[str, str],
    schema_issues: list[SchemaIssue],
    collector: _Collector,
) -> Rule | None:
    base: PathKey = ("rules", index)
    rule_id = definition.get("id") if isinstance(definition.get("id"), str) else None

    def line(rel: PathKey) -> int:
        return loaded.positions.of((*base, *rel)).line

    rule, found = build_rule(
        definition, file=loaded.file, line=line(()), channels=channels, lines=line
    )
    # The schemas already explained these places: one mistake, one problem.
    reported = {i.path[2:] for i in schema_issues if i.path[:2] == base}
    for issue in found:
        if issue.path in reported:
            continue
        shown = format_path(issue.path) if rule_id else format_path((*base, *issue.path))
        collector.located(loaded, (*base, *issue.path), issue.message, rule_id=rule_id, shown=shown)
    if any(i.path[:2] == base for i in schema_issues):
        return None
    return rule


def _example_problems(
    loaded: Loaded, index: int, rule: Rule, default_country: str | None, collector: _Collector
) -> bool:
    """Report what the rule's examples show of its fallbacks (:mod:`rules.examples`); True
    when there is nothing to report."""
    problems = fallback_problems(rule, default_country)
    for problem in problems:
        collector.located(
            loaded,
            ("rules", index, *problem.path),
            problem.message,
            rule_id=rule.id,
            shown=format_path(problem.path),
        )
    return not problems


def rule_from_definition(definition: Mapping[str, Any], config: Config) -> Rule:
    """Rebuild a rule from a stored definition (a version kept in the ledger)."""
    channels = {c.name: c.type for c in config.channels.values()}
    rule_id = definition.get("id")
    shown_id = rule_id if isinstance(rule_id, str) else None
    data = {"rules": [definition]}
    checked = issues(data, "rules") + rule_issues(data, channels, None)
    found = [Issue(i.path[2:], i.message) for i in checked]
    rule, built = build_rule(definition, file="<stored>", line=0, channels=channels)
    found.extend(built)
    if rule is None or found:
        raise ConfigError(
            [Problem("<stored>", 0, 0, shown_id, format_path(i.path), i.message) for i in found]
            or [Problem("<stored>", 0, 0, shown_id, "", "the stored rule is incomplete")]
        )
    return rule
