"""``nextstep test [RULE…]``: run the rules' ``examples:`` offline, one result per example
(the checks are :func:`nextstep.engine.rules.examples.check_example`)."""

from __future__ import annotations

from pathlib import Path

import click

from nextstep.engine.commands import EXIT_INVALID, config_option, load
from nextstep.engine.commands.render import find_rule
from nextstep.engine.rules.examples import check_example


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
