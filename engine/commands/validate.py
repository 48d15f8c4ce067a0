"""``nextstep validate``: check the configuration and every rule file, all problems at once."""

from __future__ import annotations

from pathlib import Path

import click

from nextstep.engine.commands import config_option, load


@click.command()
@config_option
def validate(config_path: Path) -> None:
    """Check nextstep.yaml and every rule file.

    Prints each problem as FILE:LINE:COL: rule ID: path: message and exits 1 if there is any.
    """
    config = load(config_path)
    files = len(config.rule_files)
    click.echo(
        f"ok: {len(config.rules)} rule{'s' if len(config.rules) != 1 else ''} in {files} "
        f"file{'s' if files != 1 else ''}, {len(config.channels)} "
        f"channel{'s' if len(config.channels) != 1 else ''}"
    )
