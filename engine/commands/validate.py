"""``nextstep validate``: check the configuration and every rule file, all problems at once."""

from __future__ import annotations

from pathlib import Path

import click

from nextstep.engine.commands import config_option, load
from nextstep.engine.plural import plural


@click.command()
@config_option
def validate(config_path: Path) -> None:
    """Check nextstep.yaml and every rule file.

    Prints each problem as FILE:LINE:COL: rule ID: path: message and exits 1 if there is any.
    """
    config = load(config_path)
    click.echo(
        f"ok: {plural(len(config.rules), 'rule')} in {plural(len(config.rule_files), 'file')}, "
        f"{plural(len(config.channels), 'channel')}"
    )
