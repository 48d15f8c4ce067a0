"""From a rule's definition to a compiled :class:`Rule`, with every problem the schemas cannot see.

The JSON Schemas check shapes; this module checks meaning: the trigger and channels exist (and
their plug-ins load), each ``send:`` block compiles through its channel's ``compile_send``
(with a :class:`SendCompiler` of this module), durations, windows and time zones parse, every
template and expression compiles and uses only known names. Problems are returned as
:class:`Issue` (a path inside the rule and a message); the caller locates them in the YAML file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nextstep.engine.durations import parse_duration
from nextstep.engine.plugins import (
    PluginUnavailable,
    Whitespace,
    channel_class,
    trigger_class,
    trigger_kinds,
)
from nextstep.engine.rules.expressions import (
    FALLBACK_NAMES,
    NAMES,
    CompiledExpression,
    CompiledTemplate,
    TemplateProblem,
    compile_expression,
    compile_template,
)
from nextstep.engine.rules.rule import (
    FallbackStep,
    Policy,
    RetryPolicy,
    Rule,
    SendSpec,
    SendWindow,
    parse_examples,
    version_of,
)
from nextstep.engine.rules.schema import did_you_mean
from nextstep.engine.rules.sendwindow import parse_days, parse_hours, zone
from nextstep.engine.rules.yamlload import PathKey, format_path


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem inside one rule: where (a path inside the rule) and what."""

    path: PathKey
    message: str


class _Builder:
    """Compiles the parts of one rule, collecting issues instead of stopping at the first."""

    def __init__(self, rule_id: str, channels: Mapping[str, str]) -> None:
        self.rule_id = rule_id
        self.channels = channels
        self.issues: list[Issue] = []
        self.sends: list[tuple[PathKey, SendSpec]] = []
        self.valid_for: float | None = None  # policy.valid_for, for the sends' compilers

    def add(self, path: PathKey, message: str) -> None:
        self.issues.append(Issue(path, message))

    def template(
        self, source: Any, path: PathKey, names: frozenset[str] = NAMES
    ) -> CompiledTemplate | None:
        if isinstance(source, int | float) and not isinstance(source, bool):
            source = str(source)
        if not isinstance(source, str):
            return None
        try:
            return compile_template(
                source, rule_id=self.rule_id, field=format_path(path), names=names
            )
        except TemplateProblem as exc:
            self.add(path, str(exc))
            return None

    def expression(self, source: Any, path: PathKey) -> CompiledExpression | None:
        if not isinstance(source, str):
            return None
        try:
            return compile_expression(source, rule_id=self.rule_id, field=format_path(path))
        except TemplateProblem as exc:
            self.add(path, str(exc))
            return None

    def duration(self, value: Any, path: PathKey) -> float | None:
        if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return None

    # -- trigger -------------------------------------------------------------------------
    def trigger(self, trigger: Any) -> tuple[str, Mapping[str, Any], str] | None:
        """(kind, config, source key) of the rule's trigger, or None (the issue is noted)."""
        if not isinstance(trigger, Mapping) or len(trigger) != 1:
            return None
        ((kind, config),) = trigger.items()
        known = trigger_kinds()
        if kind not in known:
            hint = did_you_mean(kind, known)
            self.add(
                ("trigger", kind), f"unknown trigger '{kind}'{hint} (known: {', '.join(known)})"
            )
            return None
        try:
            plugin = trigger_class(kind)
        except PluginUnavailable as exc:
            self.add(("trigger", kind), str(exc))
            return None
        if not isinstance(config, Mapping):
            return None
        try:
            source = str(plugin.source_key(config))
        except Exception as exc:  # a plug-in's bug must not stop the others' rules
            self.add(("trigger", kind), f"the {kind} plug-in cannot name this source: {exc!r}")
            return None
        return kind, config, source

    # -- send ----------------------------------------------------------------------------
    def send(
        self, spec: Any, path: PathKey, whitespace: Whitespace, names: frozenset[str]
    ) -> SendSpec | None:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("channel"), str):
            return None
        channel = spec["channel"]
        kind = self.channels.get(channel)
        if kind is None:
            hint = did_you_mean(channel, self.channels)
            listed = ", ".join(sorted(self.channels)) or "none"
            self.add(
                (*path, "channel"),
                f"unknown channel '{channel}'{hint} (nextstep.yaml has: {listed})",
            )
            return None
        try:
            plugin = channel_class(kind)
        except PluginUnavailable:
            return None  # reported at the channel's type in nextstep.yaml
        block = _BlockCompiler(self, path, whitespace, names)
        try:
            compiled = plugin.compile_send(spec, block)
        except Exception as exc:  # a plug-in's bug is reported, not raised
            self.add(path, f"the {kind} channel cannot compile this send: {exc!r}")
            return None
        if compiled is None:
            return None
        built = SendSpec(str(channel), kind, compiled, plugin.traits, format_path(path))
        self.sends.append((path, built))
        return built

    def structure(self, value: Any, path: PathKey, names: frozenset[str]) -> Any:
        """``value`` with every string compiled as a template, at any depth."""
        if isinstance(value, str):
            return self.template(value, path, names)
        if isinstance(value, Mapping):
            return {k: self.structure(v, (*path, k), names) for k, v in value.items()}
        if isinstance(value, list):
            return [self.structure(v, (*path, i), names) for i, v in enumerate(value)]
        return value

    # -- policy --------------------------------------------------------------------------
    def policy(self, policy: Any, whitespace: Whitespace) -> Policy:
        if not isinstance(policy, Mapping):
            return Policy()
        steps = []
        for i, step in enumerate(policy.get("fallback") or ()):
            if not isinstance(step, Mapping):
                continue
            path: PathKey = ("policy", "fallback", i, "send")
            send = self.send(step.get("send"), path, whitespace, FALLBACK_NAMES)
            if send is not None:
                steps.append(FallbackStep(_names(step.get("on")), send))
        return Policy(
            retry=self.retry(policy.get("retry")),
            expect=str(policy.get("expect", "sent")),
            within=self.duration(policy.get("within"), ("policy", "within")),
            fallback=tuple(steps),
            send_window=self.window(policy.get("send_window")),
            valid_for=self.duration(policy.get("valid_for"), ("policy", "valid_for")),
        )

    def retry(self, retry: Any) -> RetryPolicy:
        if not isinstance(retry, Mapping):
            return RetryPolicy()
        default = RetryPolicy()
        backoff = self.duration(retry.get("backoff"), ("policy", "retry", "backoff"))
        cap = self.duration(retry.get("max_backoff"), ("policy", "retry", "max_backoff"))
        backoff = default.backoff if backoff is None else backoff
        cap = default.max_backoff if cap is None else cap
        if cap < backoff:
            self.add(("policy", "retry", "max_backoff"), "is shorter than backoff")
        attempts = retry.get("attempts", default.attempts)
        return RetryPolicy(
            attempts=attempts if isinstance(attempts, int) else default.attempts,
            backoff=backoff,
            max_backoff=cap,
            on=_names(retry.get("on")) if "on" in retry else default.on,
            in_doubt=str(retry.get("in_doubt", default.in_doubt)),
        )

    def window(self, window: Any) -> SendWindow | None:
        if not isinstance(window, Mapping) or not isinstance(window.get("hours"), str):
            return None
        base: PathKey = ("policy", "send_window")
        try:
            days = parse_days(window.get("days"))
        except (ValueError, TypeError, AttributeError) as exc:
            self.add((*base, "days"), str(exc))
            return None
        try:
            start, end = parse_hours(window["hours"])
        except ValueError as exc:
            self.add((*base, "hours"), str(exc))
            return None
        tz = window.get("timezone", "UTC")
        if not isinstance(tz, str):
            return None
        compiled = self.template(tz, (*base, "timezone"))
        if compiled is not None and compiled.template is None:
            try:
                zone(tz)
            except ValueError as exc:
                self.add((*base, "timezone"), str(exc))
                return None
        return SendWindow(
            days, start, end, tz, compiled if compiled and compiled.template else None
        )


class _BlockCompiler:
    """The engine's :class:`SendCompiler` for one ``send:`` block: key paths relative to the
    block, templates compiled with the names the block may use (``failure`` in fallbacks)."""

    def __init__(
        self, builder: _Builder, base: PathKey, whitespace: Whitespace, names: frozenset[str]
    ) -> None:
        self._builder = builder
        self._base = base
        self._names = names
        self.rule_id = builder.rule_id
        self.whitespace: Whitespace = whitespace
        self.path = format_path(base)
        self.valid_for = builder.valid_for

    def template(self, source: Any, key_path: PathKey) -> CompiledTemplate | None:
        """A template compiled at ``key_path`` (numbers count as text), or None."""
        return self._builder.template(source, (*self._base, *key_path), self._names)

    def structure(self, value: Any, key_path: PathKey) -> Any:
        """``value`` with every string leaf compiled as a template."""
        return self._builder.structure(value, (*self._base, *key_path), self._names)

    def problem(self, key_path: PathKey, message: str) -> None:
        """Note a problem at ``key_path``."""
        self._builder.add((*self._base, *key_path), message)


def _quiet_duration(block: Any, key: str) -> float | None:
    """A duration of ``block`` read without noting a problem (``policy()`` reports it)."""
    value = block.get(key) if isinstance(block, Mapping) else None
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


def _names(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    return frozenset()


def build_rule(
    definition: Mapping[str, Any],
    *,
    file: str,
    line: int,
    channels: Mapping[str, str],
    lines: Callable[[PathKey], int] | None = None,
) -> tuple[Rule | None, list[Issue]]:
    """Compile one rule definition. ``channels`` maps channel names to their ``type``.

    Returns the rule, or None and every issue found (paths relative to the rule).
    """
    rule_id = definition.get("id")
    b = _Builder(rule_id if isinstance(rule_id, str) else "?", channels)
    trigger = b.trigger(definition.get("trigger"))
    when = _when(b, definition.get("when"))
    whitespace: Whitespace = "reject" if definition.get("whitespace") == "reject" else "normalise"
    b.valid_for = _quiet_duration(definition.get("policy"), "valid_for")
    send = b.send(definition.get("send"), ("send",), whitespace, NAMES)
    keys = {key: b.template(definition.get(key), (key,)) for key in ("to", "dedupe", "supersedes")}
    policy = b.policy(definition.get("policy"), whitespace)
    _check_recipient(b, definition)
    examples, problems = parse_examples(definition.get("examples"), lines or (lambda _path: line))
    for path, message in problems:
        b.add(path, message)
    if b.issues or trigger is None or send is None or when is None or not isinstance(rule_id, str):
        return None, b.issues
    description = definition.get("description", "")
    return (
        Rule(
            id=rule_id,
            version=version_of(definition),
            description=description if isinstance(description, str) else "",
            file=file,
            line=line,
            trigger_kind=trigger[0],
            trigger_config=trigger[1],
            source_key=trigger[2],
            send=send,
            policy=policy,
            definition=definition,
            examples=examples,
            when=when,
            to=keys["to"],
            dedupe=keys["dedupe"],
            supersedes=keys["supersedes"],
            whitespace=whitespace,
        ),
        [],
    )


def _when(b: _Builder, when: Any) -> tuple[CompiledExpression, ...] | None:
    if when is None:
        return ()
    sources: Sequence[Any] = [when] if isinstance(when, str) else when
    if not isinstance(sources, list):
        return None
    paths: list[PathKey] = (
        [("when",)] if isinstance(when, str) else [("when", i) for i in range(len(sources))]
    )
    compiled = [b.expression(source, path) for source, path in zip(sources, paths, strict=True)]
    if any(c is None for c in compiled):
        return None
    return tuple(c for c in compiled if c is not None)


def _check_recipient(b: _Builder, definition: Mapping[str, Any]) -> None:
    """A send through a channel that needs the phone needs the rule's ``to``; say so once, at
    the first send that needs it."""
    if "to" in definition:
        return
    for path, spec in b.sends:
        if spec.traits.needs_phone:
            b.add(
                (*path, "channel"),
                f"channel '{spec.channel}' {spec.traits.purpose}: the rule needs to: (the phone)",
            )
            return
