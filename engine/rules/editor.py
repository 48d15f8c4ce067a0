"""The schema ``nextstep schema`` prints: the core schema with every installed plug-in's.

Each plug-in's schemas go under ``$defs`` named after it (``trigger.<kind>``,
``channel.<type>``, ``send.<type>``); a rule's ``trigger`` lists one property per installed
kind, a channel picks its plug-in's settings by ``type`` (``allOf`` of ``if``/``then``), and a
``send:`` block takes the keys of every installed channel. A plug-in that cannot be loaded is
left out (the registry logs why).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from nextstep.engine.plugins import ChannelClass, TriggerClass, installed
from nextstep.engine.plugins.registry import CHANNELS, TRIGGERS
from nextstep.engine.rules.blocks import channel_schema
from nextstep.engine.rules.schema import Kind, core_document, with_triggers


def document(kind: Kind = "rules") -> dict[str, Any]:
    """The standalone schema of one kind of file (rule files, or ``nextstep.yaml``) for
    editors (yaml-language-server), with the installed plug-ins' schemas."""
    core = core_document(kind)
    defs: dict[str, Any] = copy.deepcopy(dict(core["$defs"]))
    triggers, _ = installed(TRIGGERS)
    channels, _ = installed(CHANNELS)
    _add_triggers(defs, triggers)
    _add_channels(defs, channels)
    _add_sends(defs, channels)
    root = {key: value for key, value in core.items() if key != "$defs"}
    interpolable = {key: _interpolable(value) for key, value in defs.items()}
    interpolable[INTERPOLATED] = {
        "description": "A value from the environment: ${VAR} or ${VAR:-default}.",
        "type": "string",
        "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    }
    return {**_interpolable(root), "$defs": interpolable}


INTERPOLATED = "interpolated"
_SCALAR_TYPES = {"string", "integer", "number", "boolean", "null"}
_SCALAR_KEYWORDS = ("enum", "const", "pattern", "format", "minimum", "maximum", "minLength")
# Keywords whose values are schemas (or lists / maps of them) to walk into; `if`, `not`,
# `propertyNames` and `contains` are conditions: a ${VAR} there would change their meaning.
_SUBSCHEMA = ("items", "additionalProperties", "then", "else")
_SUBSCHEMAS = ("anyOf", "oneOf", "allOf")
_SCHEMA_MAPS = ("properties", "patternProperties")


def _interpolable(schema: Any) -> Any:
    """``schema`` where every scalar value also accepts a ``${VAR:-default}`` text, as the
    configuration reader does before it checks the value (``port: ${PORT:-8025}``)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA:
        if key in out:
            out[key] = _interpolable(out[key])
    for key in _SUBSCHEMAS:
        # Each alternative as it is (tools look into them); the whole node takes ${VAR} below.
        if key == "allOf" and key in out:
            out[key] = [_interpolable(s) for s in out[key]]
    for key in _SCHEMA_MAPS:
        if key in out:
            out[key] = {name: _interpolable(s) for name, s in out[key].items()}
    if not _scalar(out):
        return out
    annotations = {k: out.pop(k) for k in ("description", "default", "title") if k in out}
    return {**annotations, "anyOf": [out, {"$ref": f"#/$defs/{INTERPOLATED}"}]}


def _scalar(schema: dict[str, Any]) -> bool:
    """A schema of one value that is not a mapping or a list (and not only a ``$ref``); one
    whose alternatives already take any text is left as it is."""
    alternatives = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    if alternatives:
        takes_text = any(a.get("type") == "string" and len(a) == 1 for a in alternatives)
        return not takes_text and all(_scalar(a) for a in alternatives if isinstance(a, dict))
    kinds = schema.get("type")
    kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
    if kinds and not kinds <= _SCALAR_TYPES:
        return False
    if "properties" in schema or "items" in schema:
        return False
    return bool(kinds) or any(k in schema for k in _SCALAR_KEYWORDS)


def _own(defs: dict[str, Any], name: str, schema: Mapping[str, Any]) -> None:
    """Put a plug-in's schema at ``$defs/name`` and its own ``$defs`` beside the core ones
    (a core name is never replaced)."""
    body = copy.deepcopy(dict(schema))
    for key, value in body.pop("$defs", {}).items():
        defs.setdefault(key, value)
    defs[name] = body


def _add_triggers(defs: dict[str, Any], triggers: Mapping[str, TriggerClass]) -> None:
    kinds = sorted(triggers)
    for kind in kinds:
        _own(defs, f"trigger.{kind}", triggers[kind].config_schema)
    trigger = defs["trigger"]
    trigger["description"] = f"Where the events come from: exactly one of {', '.join(kinds)}."
    trigger["properties"] = {kind: {"$ref": f"#/$defs/trigger.{kind}"} for kind in kinds}
    messages = trigger.get("x-messages", {})
    for key, text in messages.items():
        messages[key] = with_triggers(str(text), kinds)


def _add_channels(defs: dict[str, Any], channels: Mapping[str, ChannelClass]) -> None:
    types = sorted(channels)
    for kind in types:
        _own(defs, f"channel.{kind}", channel_schema(kind, channels[kind]))
    channel = defs["channel"]
    channel["properties"]["type"] = {
        "description": f"The channel plug-in: {', '.join(types)} (or another installed one).",
        "anyOf": [{"enum": types}, {"type": "string"}],
    }
    channel["allOf"] = [
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"$ref": f"#/$defs/channel.{kind}"},
        }
        for kind in types
    ]


def _add_sends(defs: dict[str, Any], channels: Mapping[str, ChannelClass]) -> None:
    send = defs["send"]
    properties = dict(send["properties"])
    described = []
    for kind in sorted(channels):
        schema = channels[kind].send_schema
        _own(defs, f"send.{kind}", schema)
        keys = list(schema.get("properties", {}))
        described.append(f"{kind}: {', '.join(keys)}")
        for key in keys:
            properties.setdefault(key, copy.deepcopy(schema["properties"][key]))
    send["properties"] = properties
    send["additionalProperties"] = False
    send["description"] = f"What to send: channel, and its type's keys ({'; '.join(described)})."
