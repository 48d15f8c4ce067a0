"""The blocks plug-ins own, checked with the plug-ins' own schemas after the core schema.

* a rule's ``trigger: {kind: block}`` against the trigger class's ``config_schema``, and with
  the class's ``check(block, base_dir)`` (its problems where the schema said nothing);
* every ``send:`` block (the rule's and its fallbacks') against the channel class's
  ``send_schema``, with ``channel`` added (without a known channel, against the keys of every
  channel type of the config);
* every channel of ``nextstep.yaml`` against the channel class's ``config_schema`` merged with
  the dispatcher's keys (``$defs/channelLimits``).

Each schema may ``$ref`` the core ``$defs``. Problems come back as :class:`SchemaIssue` with
paths from the file's root, worded like the core schema's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from nextstep.engine.plugins import (
    ChannelClass,
    PluginUnavailable,
    TriggerClass,
    channel_class,
    trigger_class,
    trigger_kinds,
)
from nextstep.engine.rules.schema import SchemaIssue, core_defs, did_you_mean, explained
from nextstep.engine.rules.yamlload import PathKey

_CHANNEL_KEY = {"type": "string", "description": "A channel name of nextstep.yaml."}
_SECRET = "#/$defs/secret"
# (id of the plug-in class, role) -> (the class, kept so that its id stays its own; validator)
_validators: dict[tuple[int, str], tuple[object, Draft202012Validator]] = {}


def _validator(owner: object, role: str, schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` with the core ``$defs`` beside the schema's own, made once
    per plug-in class and role."""
    key = (id(owner), role)
    if key not in _validators:
        defs = {**core_defs(), **schema.get("$defs", {})}
        _validators[key] = (owner, Draft202012Validator({**schema, "$defs": defs}))
    return _validators[key][1]


def channel_schema(kind: str, plugin: ChannelClass) -> dict[str, Any]:
    """A channel's settings schema: ``type``, the plug-in's own keys and the dispatcher's."""
    own = plugin.config_schema
    limits = core_defs()["channelLimits"]["properties"]
    properties = {"type": {"const": kind}, **own.get("properties", {}), **limits}
    return {
        **own,
        "type": "object",
        "properties": properties,
        "additionalProperties": own.get("additionalProperties", False),
    }


def send_schema(plugin: ChannelClass) -> dict[str, Any]:
    """A ``send:`` block's schema for a channel: ``channel`` plus the plug-in's keys."""
    own = plugin.send_schema
    return {
        **own,
        "type": "object",
        "properties": {"channel": _CHANNEL_KEY, **own.get("properties", {})},
        "required": ["channel", *own.get("required", ())],
        "additionalProperties": own.get("additionalProperties", False),
    }


def channel_issues(name: str, kind: str, plugin: ChannelClass, settings: Any) -> list[SchemaIssue]:
    """Problems of ``channels.<name>`` in ``nextstep.yaml`` for a channel of type ``kind``."""
    validator = _validator(plugin, "channel", channel_schema(kind, plugin))
    return explained(validator.iter_errors(settings), ("channels", name))


def as_text(plugin: ChannelClass, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings with every secret (ids, tokens, passwords, header values) as text: values the
    channel's schema types as ``$defs/secret``, alone or as the values of a mapping."""
    properties = plugin.config_schema.get("properties", {})
    out = dict(settings)
    for key, value in settings.items():
        schema = properties.get(key, {})
        if value is None:
            continue
        if schema.get("$ref") == _SECRET:
            out[key] = str(value)
        elif schema.get("additionalProperties", {}) == {"$ref": _SECRET} and isinstance(
            value, Mapping
        ):
            out[key] = {str(k): str(v) for k, v in value.items()}
    return out


def rule_issues(data: Any, channels: Mapping[str, str], base_dir: Path | None) -> list[SchemaIssue]:
    """Problems of the plug-in blocks of every rule of a rule file's ``data`` (``channels``:
    name → type). ``base_dir`` None skips the triggers' ``check`` (a stored rule)."""
    rules = data.get("rules") if isinstance(data, Mapping) else None
    found: list[SchemaIssue] = []
    for i, definition in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(definition, Mapping):
            continue
        found += _trigger(definition.get("trigger"), ("rules", i, "trigger"), base_dir)
        for path, block in _sends(definition, ("rules", i)):
            found += _send(block, path, channels)
    return found


def _sends(definition: Mapping[str, Any], base: PathKey) -> Iterator[tuple[PathKey, Any]]:
    yield (*base, "send"), definition.get("send")
    policy = definition.get("policy")
    steps = policy.get("fallback") if isinstance(policy, Mapping) else None
    for j, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, Mapping):
            yield (*base, "policy", "fallback", j, "send"), step.get("send")


def _trigger(trigger: Any, base: PathKey, base_dir: Path | None) -> list[SchemaIssue]:
    if not isinstance(trigger, Mapping) or len(trigger) != 1:
        return []  # the core schema says why
    ((kind, config),) = trigger.items()
    if not isinstance(config, Mapping) or kind not in trigger_kinds():
        return []
    try:
        plugin = trigger_class(kind)
    except PluginUnavailable:
        return []  # the compiler reports it where the rule names it
    return trigger_issues(kind, plugin, config, (*base, kind), base_dir)


def trigger_issues(
    kind: str, plugin: TriggerClass, config: Mapping[str, Any], base: PathKey, base_dir: Path | None
) -> list[SchemaIssue]:
    """Problems of one trigger block: its schema's, then its ``check``'s at the places the
    schema did not already explain (one mistake, one problem)."""
    errors = list(_validator(plugin, "trigger", plugin.config_schema).iter_errors(config))
    found = explained(errors, base)
    if base_dir is None:
        return found
    try:
        problems = plugin.check(config, base_dir)
    except Exception as exc:  # a plug-in's bug is reported, not raised
        return [*found, SchemaIssue(base, False, f"the {kind} trigger's check failed: {exc!r}")]
    covered = {place for error in errors for place in _places(error)}
    return found + [
        SchemaIssue((*base, *path), False, message)
        for path, message in problems
        if tuple(path) not in covered
    ]


def _places(error: ValidationError) -> Iterator[PathKey]:
    """The keys (paths inside the block) a schema error is about."""
    path: PathKey = tuple(error.absolute_path)
    instance: Any = error.instance
    if error.validator == "required":
        yield (*path, str(error.message).split("'")[1])
    elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
        yield from ((*path, key) for key in instance)
    else:
        yield path


def _send(block: Any, base: PathKey, channels: Mapping[str, str]) -> list[SchemaIssue]:
    if not isinstance(block, Mapping):
        return []
    plugins = _loaded(channels.values())
    known = _send_keys(plugins)
    channel = block.get("channel")
    kind = channels.get(channel) if isinstance(channel, str) else None
    plugin = plugins.get(kind or "")
    if kind is None or plugin is None:
        # No channel, an unknown one (the compiler's problem) or an unavailable type (the
        # config's): the keys no channel of the config takes are mistakes all the same.
        return [_unknown_key(key, base, known) for key in block if key not in known]
    validator = _validator(plugin, "send", send_schema(plugin))
    found: list[SchemaIssue] = []
    for error in validator.iter_errors(block):
        found += _send_problem(error, base, kind, plugin, known)
    misspelt = {issue.path[:-1] for issue in found if issue.at_key and issue.path != base}
    # A misspelt key also leaves the right key missing: one mistake, one problem.
    return [i for i in found if not (i.message.startswith("missing") and i.path in misspelt)]


def _send_problem(
    error: ValidationError, base: PathKey, kind: str, plugin: ChannelClass, known: list[str]
) -> list[SchemaIssue]:
    path: PathKey = (*base, *error.absolute_path)
    if error.validator == "required" and path == base:
        key = str(error.message).split("'")[1]
        return [SchemaIssue(path, True, f"missing required key '{key}' for a {kind} channel")]
    if error.validator != "additionalProperties" or path != base:
        return explained([error], base)
    own = list(plugin.send_schema.get("properties", {}))
    takes = ", ".join(own)
    block: Mapping[str, Any] = error.instance  # type: ignore[assignment]
    found = []
    for key in block:
        if key == "channel" or key in own:
            continue
        if key in known:
            message = f"'{key}' is not used by {kind} channels (they take: {takes})"
            found.append(SchemaIssue((*path, key), False, message))
        else:
            found.append(_unknown_key(key, path, known))
    return found


def _unknown_key(key: Any, path: PathKey, known: list[str]) -> SchemaIssue:
    hint = did_you_mean(str(key), known) or f" (allowed here: {', '.join(known)})"
    return SchemaIssue((*path, key), True, f"unknown key '{key}'{hint}")


def _loaded(kinds: Iterable[str]) -> dict[str, ChannelClass]:
    """The channel classes of ``kinds`` that load (only the types the config uses), in the
    order of ``kinds``."""
    found = {}
    for kind in dict.fromkeys(kinds):
        try:
            found[kind] = channel_class(kind)
        except PluginUnavailable:
            continue  # the config reports it at the channel's type
    return found


def _send_keys(plugins: Mapping[str, ChannelClass]) -> list[str]:
    """Every key a ``send:`` block may have with some channel type of the config (in the order
    of ``nextstep.yaml``), ``channel`` first."""
    keys = ["channel"]
    for kind in plugins:
        keys += [k for k in plugins[kind].send_schema.get("properties", {}) if k not in keys]
    return keys
