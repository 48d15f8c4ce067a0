"""The 1MSG channel's JSON Schemas: its settings in ``nextstep.yaml`` and its ``send:`` block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "The 1MSG WhatsApp Business API.",
    "type": "object",
    "additionalProperties": False,
    "required": ["base_url", "instance_id", "token"],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://", "default": "https://api.1msg.io"},
        "instance_id": {"$ref": "#/$defs/secret"},
        "token": {"$ref": "#/$defs/secret"},
        "timeout": {"$ref": "#/$defs/timeout"},
        "max_connections": {"type": "integer", "minimum": 1},
        "history": {
            "type": "boolean",
            "description": "History storage is on for the instance: a notification in doubt "
            "whose message is not in GET messages after history_delay is sent again.",
        },
        "history_delay": {
            "$ref": "#/$defs/duration",
            "description": "How long after an attempt the history is trusted (2m).",
        },
    },
}

SEND_SCHEMA: Mapping[str, Any] = {
    "description": "An approved WhatsApp template: name, namespace, language, its body and the "
    "values of its variables.",
    "type": "object",
    "required": ["template", "namespace", "language", "text"],
    "properties": {
        "template": {"$ref": "#/$defs/template", "description": "Approved template name."},
        "namespace": {"$ref": "#/$defs/template"},
        "language": {
            "$ref": "#/$defs/template",
            "description": "Template language code (en, es, pt_BR…).",
        },
        "text": {
            "type": "string",
            "description": "The approved body, variables written <<1>>, <<2>>…",
        },
        "params": {
            "description": "Jinja2 templates for the body variables <<1>>..<<n>>.",
            "type": "object",
            "propertyNames": {
                "pattern": "^[1-9][0-9]*$",
                "x-messages": {"pattern": "{value} is not a variable number (1, 2, 3…)"},
            },
            "additionalProperties": {"type": ["string", "number"]},
        },
    },
}
