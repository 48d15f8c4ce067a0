"""``nextstep test [RULE…]``: run the rules' ``examples:`` offline, one result per example."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from nextstep.engine.commands import EXIT_INVALID, config_option, load
from nextstep.engine.commands.render import find_rule
from nextstep.engine.errors import RenderError
from nextstep.engine.rules.examples import example_event, render_fallback
from nextstep.engine.rules.render import Skipped, evaluate
from nextstep.engine.rules.rule import Example, Rule


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


@click.command()
@click.argument("rule_ids", metavar="[RULE]...", nargs=-1)
@click.option("-v", "--verbose", is_flag=True, help="Also print the examples that pass.")
@config_option
def test(rule_ids: tuple[str, ...], verbose: bool, config_path: Path) -> None:
    """Run the examples of every rule (or of the RULEs named) offline.

    Prints one line per failing example with the difference and ends with
    "N passed, N failed"; exits 1 when any example fails.
    """
    config = load(config_path)
    rules = (
        [find_rule(config, r) for r in rule_ids]
        if rule_ids
        else sorted(config.rules.values(), key=lambda r: (r.file, r.line))
    )
    passed = failed = 0
    for rule in rules:
        for example in rule.examples:
            where = f"{rule.file}:{example.line}: rule {rule.id}: examples[{example.index}]"
            differences = check_example(rule, example, default_country=config.default_country)
            if differences:
                failed += 1
                click.echo(f"FAIL {where}: {'; '.join(differences)}")
            else:
                passed += 1
                if verbose:
                    click.echo(f"ok   {where}")
    click.echo(f"{passed} passed, {failed} failed")
    if failed:
        click.get_current_context().exit(EXIT_INVALID)
