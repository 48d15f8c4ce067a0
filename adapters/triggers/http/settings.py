"""The ``http:`` block of a rule: its JSON Schema and its reading into :class:`HttpSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from nextstep.adapters.triggers.config import ConfigReader
from nextstep.engine.plugins import ConfigProblem, EventFields
from nextstep.engine.rules.config import DEFAULT_MAX_BODY

PREFIX = "/events/"

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "POST /events/… with a Bearer token.",
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "path": {
            "type": "string",
            "pattern": "^/events/[A-Za-z0-9._~/-]+$",
            "x-messages": {"pattern": "{value} is not an event path (use /events/<name>)"},
        },
        "schema": {"type": "object", "description": "A JSON Schema every event body must satisfy."},
        "max_body": {
            "type": "integer",
            "minimum": 1,
            "description": "Largest accepted body in bytes.",
        },
    },
}


def event_path(path: str) -> str:
    """``loans`` or ``/events/loans/`` → ``/events/loans`` (the trigger's source key)."""
    name = path.strip("/")
    if name.startswith(PREFIX.strip("/") + "/"):
        name = name[len(PREFIX) - 1 :]
    return PREFIX + name


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The ``http:`` block read: the event path, the body limit, the body's validator."""

    path: str
    max_body: int
    validator: Draft202012Validator | None


def read_settings(
    config: Mapping[str, Any], default_max: int = DEFAULT_MAX_BODY
) -> tuple[HttpSettings, list[ConfigProblem]]:
    """The ``http:`` block read, and every problem found in it."""
    read = ConfigReader("http", config, tuple(CONFIG_SCHEMA["properties"]))
    path = event_path(read.text("path", required=True))
    max_body = read.positive_int("max_body", default_max)
    schema = read.mapping("schema")
    validator = None
    if schema:
        try:
            Draft202012Validator.check_schema(schema)
            validator = Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        except SchemaError as exc:
            read.fail("schema", f"is not a valid JSON Schema: {exc.message}")
    return HttpSettings(path, max_body, validator), read.problems


def schema_fields(schema: Any) -> EventFields | None:
    """The top-level fields an event schema allows, when it is closed (``properties`` with
    ``additionalProperties: false`` or ``unevaluatedProperties: false``); else None."""
    if not isinstance(schema, Mapping) or schema.get("patternProperties"):
        return None
    properties = schema.get("properties")
    closed = False in (schema.get("additionalProperties"), schema.get("unevaluatedProperties"))
    if not isinstance(properties, Mapping) or not closed:
        return None
    return EventFields(frozenset(map(str, properties)), True, "the http trigger's schema")
