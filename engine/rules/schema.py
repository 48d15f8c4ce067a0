"""The core JSON Schema (Draft 2020-12) and its errors as located, readable problems.

``schema.json`` (beside this module) holds one ``$defs`` per core shape: the config, a rule,
policies, examples, durations, templates, secrets, the dispatcher's channel keys. A trigger
block, a channel's settings and a ``send:`` block are only required to be mappings here; the
plug-in that owns each one checks it with its own schema (:mod:`rules.blocks`), and
:mod:`rules.editor` assembles both into the document ``nextstep schema`` prints. Errors are
reworded for integrators ("unknown key 'tempalte'; did you mean 'template'?") and located at
the YAML position of the value or key concerned.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from nextstep.engine.plugins import (
    PluginUnavailable,
    channel_class,
    channel_types,
    trigger_class,
    trigger_kinds,
)
from nextstep.engine.rules.yamlload import PathKey

Kind = Literal["rules", "config"]

_ROOTS: dict[Kind, str] = {"rules": "ruleFile", "config": "config"}
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


@cache
def _schema() -> dict[str, Any]:
    text = (
        resources.files("nextstep.engine.rules").joinpath("schema.json").read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def core_defs() -> Mapping[str, Any]:
    """The core schema's ``$defs``: shapes a plug-in's schema may ``$ref`` (``#/$defs/duration``,
    ``rate``, ``template``, ``secret``, ``timeout``…)."""
    defs: Mapping[str, Any] = _schema()["$defs"]
    return defs


def core_document(kind: Kind = "rules") -> dict[str, Any]:
    """The core schema of one kind of file: the root shape plus every core ``$defs``."""
    full = _schema()
    root = dict(full["$defs"][_ROOTS[kind]])
    return {"$schema": full["$schema"], **root, "$defs": full["$defs"]}


@cache
def _validator(kind: Kind) -> Draft202012Validator:
    return Draft202012Validator(core_document(kind))


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``word`` looks like a misspelt option, else ``""``."""
    ordered = sorted(options)
    close = difflib.get_close_matches(word, ordered, n=1, cutoff=0.6)
    if not close and len(word) >= 3:
        close = [o for o in ordered if o.startswith(word) or (len(o) >= 3 and word.startswith(o))]
    return f"; did you mean '{close[0]}'?" if close else ""


def show(value: Any) -> str:
    """A short, JSON-like rendering of a value for a message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One schema violation: where (``at_key``: point at the key, not the value) and why."""

    path: PathKey
    at_key: bool
    message: str


def issues(data: Any, kind: Kind) -> list[SchemaIssue]:
    """Every core schema violation of ``data``, each explained once, in document order."""
    return explained(_validator(kind).iter_errors(data))


def explained(errors: Iterable[ValidationError], base: PathKey = ()) -> list[SchemaIssue]:
    """Schema errors as issues, each explained once, their paths below ``base``."""
    return [
        SchemaIssue((*base, *path), at_key, message)
        for error in errors
        for path, at_key, message in explain(error)
    ]


def explain(error: ValidationError) -> Iterator[tuple[PathKey, bool, str]]:
    """(path, point at the key rather than the value, message) for one schema error."""
    path: PathKey = tuple(error.absolute_path)
    instance: Any = error.instance
    custom = _custom(error)
    validator = str(error.validator)
    if error.context and validator in {"anyOf", "oneOf"}:
        best = best_match(error.context)
        if best is not None:
            yield from explain(best)
            return
    if validator == "additionalProperties" and isinstance(error.instance, Mapping):
        yield from _unknown_keys(error, path)
    elif validator == "required":
        name = _quoted(error.message)
        yield path, True, f"missing required key '{name}'"
    elif validator == "propertyNames":
        message = custom or "{value} is not allowed"
        yield (
            (*path, str(instance)),
            True,
            "key " + message.replace("{value}", show(instance)),
        )
    elif custom:
        # A whole mapping is wrong (one trigger too many): point at its key, where one looks.
        yield path, validator.endswith("Properties"), custom.replace("{value}", show(instance))
    else:
        yield path, False, _reword(error)


def _custom(error: ValidationError) -> str | None:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    messages = schema.get("x-messages", {})
    message = messages.get(str(error.validator))
    if not message:
        return None
    return with_triggers(str(message), list(trigger_kinds()))


def with_triggers(message: str, kinds: list[str]) -> str:
    """``message`` with ``{triggers}`` replaced by the trigger kinds ("a, b or c")."""
    listed = " or ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)
    return message.replace("{triggers}", listed or "none installed")


def _unknown_keys(error: ValidationError, path: PathKey) -> Iterator[tuple[PathKey, bool, str]]:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = list(schema.get("properties", {}))
    instance: Any = error.instance
    for key in instance:
        if key in known:
            continue
        hint = _home_hint(str(key), path) or did_you_mean(str(key), known)
        if not hint:
            hint = f" (allowed here: {', '.join(known)})" if known else ""
        yield (*path, key), True, f"unknown key '{key}'{hint}"


def _home_hint(key: str, path: PathKey) -> str:
    """`` (a key of policy: indent it under policy)`` for a key written at the wrong level."""
    in_rule = len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int)
    here = path[2:] if in_rule else path
    shown = format_key_path(here)
    places = [p for p in key_homes("rule" if in_rule else "config").get(key, ()) if p != shown]
    if not places:
        return ""
    if len(places) == 1:
        return f" (a key of {places[0]}: indent it under {places[0].split('.')[-1]})"
    return f" (a key of {' or '.join(places[:3])})"


def format_key_path(path: PathKey) -> str:
    """A place in a document as :func:`key_homes` names it: ``policy.fallback[n].send``."""
    return ".".join("[n]" if isinstance(p, int) else str(p) for p in path).replace(".[n]", "[n]")


@cache
def key_homes(root: str) -> dict[str, tuple[str, ...]]:
    """Every key the core schema (and the installed plug-ins' blocks) knows below ``$defs/root``
    (``rule`` or ``config``), with the places it belongs: ``{"fallback": ("policy",)}``."""
    homes: dict[str, list[str]] = {}
    _walk_homes(core_defs()[root], "", 0, homes)
    if root == "rule":
        for kind in trigger_kinds():
            _walk_homes(_plugin_schema("trigger", kind), f"trigger.{kind}", 1, homes)
        for kind in channel_types():
            _walk_homes(_plugin_schema("send", kind), "send", 1, homes)
    return {key: tuple(places) for key, places in homes.items()}


def _walk_homes(schema: Any, where: str, depth: int, homes: dict[str, list[str]]) -> None:
    """Record the keys of ``schema`` (found at ``where``) and of every schema below it."""
    if not isinstance(schema, Mapping) or depth > 6:
        return
    ref = schema.get("$ref", "")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        _walk_homes(core_defs().get(ref.rsplit("/", 1)[1]), where, depth + 1, homes)
    for key, sub in schema.get("properties", {}).items():
        if key == "examples":  # what an example expects is no home for a rule's keys
            continue
        places = homes.setdefault(key, [])
        if where and where not in places:
            places.append(where)
        _walk_homes(sub, f"{where}.{key}" if where else key, depth + 1, homes)
    for part in ("items", "then", "else", "additionalProperties"):
        inner = f"{where}[n]" if part == "items" else where
        _walk_homes(schema.get(part), inner, depth + 1, homes)
    for part in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(part, ()):
            _walk_homes(sub, where, depth + 1, homes)


def _plugin_schema(role: str, kind: str) -> Mapping[str, Any]:
    """A plug-in's block schema (a trigger's config, a channel's send), or {} when it does not
    load (the registry says why elsewhere)."""
    try:
        if role == "trigger":
            return trigger_class(kind).config_schema
        return channel_class(kind).send_schema
    except PluginUnavailable:
        return {}


def _quoted(message: str) -> str:
    match = re.match(r"'([^']*)'", message)
    return match.group(1) if match else message


def _type_phrase(expected: str | Sequence[str]) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    return " or ".join(_TYPE_NAMES.get(n, n) for n in names)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "nothing" if value is None else type(value).__name__


def _reword(error: ValidationError) -> str:
    validator = str(error.validator)
    expected: Any = error.validator_value
    value: Any = error.instance
    if validator == "type":
        return f"expected {_type_phrase(expected)}, got {_kind_of(value)} {show(value)}"
    if validator == "enum":
        options = [str(o) for o in expected]
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return f"{show(value)} is not one of {', '.join(options)}{hint}"
    if validator == "const":
        return f"must be {show(expected)}, got {show(value)}"
    if validator == "minProperties":
        return "must not be empty"
    if validator in {"minItems", "minLength"} and expected == 1:
        return "must not be empty"
    if validator == "pattern":
        return f"{show(value)} does not match {expected}"
    return error.message
