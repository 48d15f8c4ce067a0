"""``nextstep run``: the daemon in the foreground, logging to stderr."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from nextstep.engine.commands import EXIT_INVALID, config_option, print_problems
from nextstep.engine.errors import ConfigError
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.logs import config_secrets, configure_logging

log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="NEXTSTEP_LOG_FORMAT",
    help="Plain text lines or one JSON object per line.",
)
log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar="NEXTSTEP_LOG_LEVEL",
)


@click.command()
@config_option
@log_format_option
@log_level_option
def run(config_path: Path, log_format: str, log_level: str) -> None:
    """Run the daemon: triggers, server, sending, hot reload."""
    from nextstep.engine.runtime.daemon import run_daemon

    redacting = configure_logging("json" if log_format == "json" else "text", log_level)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print_problems(exc)
        raise SystemExit(EXIT_INVALID) from exc
    redacting.set_secrets(config_secrets(config))
    raise SystemExit(asyncio.run(run_daemon(config, redacting=redacting)))
