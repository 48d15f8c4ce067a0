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
    return {**core, "$defs": defs}


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
