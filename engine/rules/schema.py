"""The shipped JSON Schema (Draft 2020-12) and its errors as located, readable problems.

``schema.json`` (beside this module) holds one ``$defs`` per shape; :func:`document` cuts the
schema an editor needs for one kind of file (the rule files or ``nextstep.yaml``) so that
yaml-language-server can complete and check it. Errors are reworded for integrators
("unknown key 'tempalte'; did you mean 'template'?") and located at the YAML position of the
value or key concerned.
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


def document(kind: Kind = "rules") -> dict[str, Any]:
    """A standalone schema for one kind of file: the root shape plus every ``$defs``."""
    full = _schema()
    root = dict(full["$defs"][_ROOTS[kind]])
    return {"$schema": full["$schema"], **root, "$defs": full["$defs"]}


@cache
def _validator(kind: Kind) -> Draft202012Validator:
    return Draft202012Validator(document(kind))


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
    """Every schema violation of ``data``, each explained once, in document order."""
    found: list[SchemaIssue] = []
    for error in _validator(kind).iter_errors(data):
        found.extend(
            SchemaIssue(path, at_key, message) for path, at_key, message in _explain(error)
        )
    return found


def _explain(error: ValidationError) -> Iterator[tuple[PathKey, bool, str]]:
    """(path, point at the key rather than the value, message) for one schema error."""
    path: PathKey = tuple(error.absolute_path)
    instance: Any = error.instance
    custom = _custom(error)
    validator = str(error.validator)
    if error.context and validator in {"anyOf", "oneOf"}:
        best = best_match(error.context)
        if best is not None:
            yield from _explain(best)
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
    return str(message) if message else None


def _unknown_keys(error: ValidationError, path: PathKey) -> Iterator[tuple[PathKey, bool, str]]:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = list(schema.get("properties", {}))
    instance: Any = error.instance
    for key in instance:
        if key in known:
            continue
        hint = did_you_mean(str(key), known)
        if not hint:
            hint = f" (allowed here: {', '.join(known)})" if known else ""
        yield (*path, key), True, f"unknown key '{key}'{hint}"


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
