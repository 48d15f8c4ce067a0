"""A rule's examples offline: :func:`check_example` (what ``nextstep test`` and the console's
rules page report), and fallbacks rendered offline: previews (``render``), expectations and the
check ``validate`` makes of every example.

A fallback renders with the notification's event and ``failure`` (status, reason, code,
attempts, class). Offline there is no real failure, so :func:`sample_failure` makes one that
fits the step's ``on`` (``expired`` for a step only on expired, else ``failed`` with the first
failure class the step names, ``recipient`` by default); an example's own ``failure:`` mapping
overrides any of it. Fallback steps are numbered from 0, as in ``policy.fallback[0]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nextstep.engine.errors import RenderError
from nextstep.engine.model import Event, Message
from nextstep.engine.rules.render import Skipped, evaluate, render_send
from nextstep.engine.rules.rule import Example, Rule

FAILURE_CLASSES = ("recipient", "template", "transient", "in_doubt", "account")
SAMPLE_REASONS = {
    "expired": "sample: no delivered status in time",
    "recipient": "sample: the recipient cannot be reached",
    "template": "sample: the template was refused",
    "transient": "sample: the provider was unavailable",
    "in_doubt": "sample: no answer from the provider",
    "account": "sample: the account was refused",
}


def sample_failure(on: frozenset[str], given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``failure`` a fallback step that runs ``on`` these renders with offline."""
    classes = [c for c in FAILURE_CLASSES if c in on]
    if on and on <= {"expired"}:
        failure: dict[str, Any] = {"status": "expired", "class": None}
    else:
        failure = {"status": "failed", "class": classes[0] if classes else "recipient"}
    failure["reason"] = SAMPLE_REASONS[failure["class"] or "expired"]
    failure.update(code=None, attempts=1)
    failure.update(given or {})
    return failure


def render_fallback(
    rule: Rule,
    index: int,
    event: Event,
    *,
    now: float,
    default_country: str | None,
    failure: Mapping[str, Any] | None = None,
) -> tuple[Message, dict[str, Any]]:
    """Step ``index`` of the rule's fallbacks for ``event``: the message and the failure it was
    rendered with; RenderError when it cannot be rendered."""
    step = rule.policy.fallback[index]
    scope = sample_failure(step.on, failure)
    message = render_send(
        rule, step.send, event, extra={"failure": scope}, default_country=default_country, now=now
    )
    return message, scope


@dataclass(frozen=True, slots=True)
class ExampleProblem:
    """Something ``validate`` finds wrong with an example: where inside it, and what."""

    example: Example
    path: tuple[str | int, ...]  # inside the rule: ("examples", 2) or deeper
    message: str


def example_event(rule: Rule, example: Example) -> tuple[Event, float]:
    """The example's event (with its trigger, by default the rule's kind and source) and
    its time."""
    trigger = example.trigger or {"kind": rule.trigger_kind, "source": rule.source_key}
    return Event(example.event, trigger), example.now if example.now is not None else time.time()


def fallback_problems(rule: Rule, default_country: str | None) -> list[ExampleProblem]:
    """For every example the rule matches: each fallback step must render with its event
    (unless the example expects that step to fail), and the steps it expects must exist."""
    problems: list[ExampleProblem] = []
    steps = len(rule.policy.fallback)
    for example in rule.examples:
        wanted = _expected_steps(example)
        base: tuple[str | int, ...] = ("examples", example.index)
        for key in wanted:
            if not key.isdecimal() or int(key) >= steps:
                have = f"steps 0 to {steps - 1}" if steps else "no fallback"
                message = f"the rule has no fallback step {key} (it has {have})"
                problems.append(
                    ExampleProblem(example, (*base, "expect", "fallback", key), message)
                )
        event, now = example_event(rule, example)
        try:
            matched = evaluate(rule, event, now=now, default_country=default_country)
        except RenderError:
            continue  # the main send's own expectations are `nextstep test`'s business
        if isinstance(matched, Skipped):
            continue
        for index in range(steps):
            if "error" in wanted.get(str(index), {}):
                continue
            try:
                render_fallback(
                    rule,
                    index,
                    event,
                    now=now,
                    default_country=default_country,
                    failure=example.failure,
                )
            except RenderError as exc:
                message = f"{exc.field} cannot render for this example's event: {exc.reason}"
                problems.append(ExampleProblem(example, base, message))
    return problems


def _expected_steps(example: Example) -> dict[str, Mapping[str, Any]]:
    expect = example.expect
    wanted = expect.get("fallback") if isinstance(expect, Mapping) else None
    if not isinstance(wanted, Mapping):
        return {}
    return {str(k): v for k, v in wanted.items() if isinstance(v, Mapping)}


def check_example(rule: Rule, example: Example, *, default_country: str | None) -> list[str]:
    """What differs between the example's expectation and what the rule makes of its event
    (empty when the example passes); its ``fallback`` expectations too."""
    found = _check_main(rule, example, default_country=default_country)
    expect = example.expect
    wanted = expect.get("fallback") if isinstance(expect, Mapping) else None
    for key, step in (wanted or {}).items():
        found += [
            f"fallback[{key}].{difference}"
            for difference in _check_fallback(rule, example, int(key), step, default_country)
        ]
    return found


def _check_fallback(
    rule: Rule,
    example: Example,
    index: int,
    expect: Mapping[str, Any],
    default_country: str | None,
) -> list[str]:
    """Differences between fallback step ``index``'s expectation and what it renders."""
    if index >= len(rule.policy.fallback):
        return [f"{index}: the rule has no such fallback step"]
    event, now = example_event(rule, example)
    try:
        message, _ = render_fallback(
            rule, index, event, now=now, default_country=default_country, failure=example.failure
        )
    except RenderError as exc:
        wanted = expect.get("error")
        if isinstance(wanted, str) and wanted in str(exc):
            return []
        expected = f" (expected an error with {wanted!r})" if wanted else ""
        return [f"render error: {exc.field}: {exc.reason}{expected}"]
    if "error" in expect:
        return [f"error: expected an error with {expect['error']!r}, but it rendered"]
    return _differences(expect, message.to, message.fields)


def _check_main(rule: Rule, example: Example, *, default_country: str | None) -> list[str]:
    event, now = example_event(rule, example)
    expect = example.expect
    try:
        result = evaluate(rule, event, now=now, default_country=default_country)
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
    return _differences(expect, result.recipient, result.fields)


def _differences(expect: Mapping[str, Any], to: str, fields: Mapping[str, Any]) -> list[str]:
    actual: dict[str, Any] = {
        "to": to,
        "text": fields.get("text"),
        "params": fields.get("params"),
        "body": fields.get("body"),
        "subject": fields.get("subject"),
    }
    found = []
    for key, wanted in expect.items():
        if key == "fallback":
            continue
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
            str(value[k]) for k in sorted(value, key=lambda k: int(k) if str(k).isdecimal() else 0)
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
