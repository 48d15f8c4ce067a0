"""``nextstep demo``: the whole pipeline on embedded defaults (see :mod:`.run`). Added to the
CLI by the ``nextstep.commands`` entry point; what it runs is imported when it runs, so that
``nextstep --help`` stays quick."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-run"),
    show_default=True,
    help="The demo's folder (emptied if it holds a previous demo).",
)
@click.option("--keep-running", is_flag=True, help="Stay up after the demo (Ctrl-C stops).")
@click.option("--timeout", default=90.0, show_default=True, help="Seconds before giving up.")
def demo(folder: Path, keep_running: bool, timeout: float) -> None:
    """Run the whole pipeline on the built-in 1MSG sandbox."""
    from rich.console import Console

    from nextstep.adapters.demo.run import DemoOptions, run_demo

    options = DemoOptions(folder=folder, keep_running=keep_running, timeout=timeout)
    raise SystemExit(asyncio.run(run_demo(options, Console())))
