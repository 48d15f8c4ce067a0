"""What every command shares: the ``-c/--config`` option, loading the configuration, reading
an event, and one mapping of nextstep's errors to messages and exit codes.

Exit codes: 0 ok, 1 invalid input or a failed check, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from nextstep.engine.errors import ConfigError, NextstepError, UsageError
from nextstep.engine.plural import plural
from nextstep.engine.rules.config import Config, load_config
from nextstep.engine.rules.yamlload import load_text

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


class NextstepGroup(click.Group):
    """A click group that turns nextstep's errors into messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; nextstep's errors become a message and exit code 1 or 2."""
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise click.UsageError(str(exc), self._command_context(ctx)) from None
        except ConfigError as exc:
            print_problems(exc)
            ctx.exit(EXIT_INVALID)
        except NextstepError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_INVALID)

    def _command_context(self, ctx: click.Context) -> click.Context:
        """The context of the command that was running (its usage line is the one to show),
        else the group's."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        if command is None:
            return ctx
        return click.Context(command, info_name=name, parent=ctx)


def config_option(function: F) -> F:
    """``-c/--config FILE``: default $NEXTSTEP_CONFIG, else ./nextstep.yaml."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="NEXTSTEP_CONFIG",
        default="nextstep.yaml",
        show_default=True,
        show_envvar=True,
        help="The engine configuration.",
    )(function)


def print_problems(error: ConfigError) -> None:
    """Every problem on its own line, then how many."""
    for problem in error.problems:
        click.echo(str(problem))
    count = len(error.problems)
    click.echo(f"{plural(count, 'problem')} found", err=True)


def load(config_path: Path) -> Config:
    """Load the configuration (ConfigError propagates to the group, which prints it)."""
    return load_config(config_path)


def read_mapping(source: str, what: str) -> Mapping[str, Any]:
    """A JSON (or YAML) object from a file, or from stdin when ``source`` is ``-``."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {source!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        loaded = load_text(text, source, None)
        if loaded.problems:
            raise UsageError(f"the {what} is neither JSON nor YAML: {loaded.problems[0]}") from None
        data = loaded.data
    if not isinstance(data, Mapping):
        raise UsageError(f"the {what} must be a JSON object, not {type(data).__name__}")
    return data
