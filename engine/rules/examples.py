"""A rule's ``examples:`` checked offline: what the rule makes of each example's event against
what the example expects (``nextstep test``, the console's rules page)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from nextstep.engine.errors import RenderError
from nextstep.engine.ledger.base import NewNotification
from nextstep.engine.model import Event
from nextstep.engine.rules.render import Skipped, evaluate
from nextstep.engine.rules.rule import Example, Rule


def check_example(rule: Rule, example: Example, *, default_country: str | None) -> list[str]:
    """What differs between the example's expectation and what the rule makes of its event
    (empty when the example passes)."""
    trigger = example.trigger or {"kind": rule.trigger_kind, "source": rule.source_key}
    now = example.now if example.now is not None else time.time()
    expect = example.expect
    try:
        result = evaluate(
            rule, Event(example.event, trigger), now=now, default_country=default_country
        )
    except RenderError as exc:
        wanted = expect.get("error") if isinstance(expect, Mapping) else None
        if isinstance(wanted, str) and wanted in str(exc):
            return []
        expected = f" (expected an error with {wanted!r})" if wanted else ""
        return [f"render error: {exc.field}: {exc.reason}{expected}"]
    if expect == "skip":
        if isinstance(result, Skipped):
            return []
        return [f"expected skip, but the rule matches (to {result.recipient})"]
    if isinstance(result, Skipped):
        return [f"expected a message, but skipped: {result.reason}"]
    if "error" in expect:
        return [f"expected an error with {expect['error']!r}, but it rendered"]
    return _differences(expect, result)


def _differences(expect: Mapping[str, Any], result: NewNotification) -> list[str]:
    actual: dict[str, Any] = {
        "to": result.recipient,
        "text": result.fields.get("text"),
        "params": result.fields.get("params"),
        "body": result.fields.get("body"),
        "subject": result.fields.get("subject"),
    }
    found = []
    for key, wanted in expect.items():
        if key == "to":
            wanted = str(wanted)
        elif key == "params":
            wanted = _param_list(wanted)
        if wanted != actual.get(key):
            found.append(f"{key}: {_diff(wanted, actual.get(key))}")
    return found


def _param_list(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [
            str(value[k]) for k in sorted(value, key=lambda k: int(k) if str(k).isdigit() else 0)
        ]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _diff(expected: Any, actual: Any) -> str:
    """``expected X, got Y``; long texts are cut to the place where they first differ."""
    if (
        isinstance(expected, str)
        and isinstance(actual, str)
        and max(len(expected), len(actual)) > 60
    ):
        at = next(
            (i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
            min(len(expected), len(actual)),
        )
        start = max(0, at - 20)
        cut = "…" if start else ""
        return (
            f"differs at character {at + 1}: expected {cut}{expected[start : at + 40]!r}, "
            f"got {cut}{actual[start : at + 40]!r}"
        )
    return f"expected {_show(expected)}, got {_show(actual)}"


def _show(value: Any) -> str:
    return (
        repr(value)
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, default=str)
    )
