"""The ``nextstep`` command line: a thin click group; each command lives in engine/commands/.

Other commands join with ``main.add_command(...)`` at the end of this file. Shared options and
helpers (``config_option``, ``load``) are in :mod:`engine.commands`.
"""

from __future__ import annotations

import click

from engine import __version__
from engine.commands import NextstepGroup
from engine.commands.decide import cancel, release
from engine.commands.demo import demo
from engine.commands.ingest import ingest
from engine.commands.render import render
from engine.commands.run import run
from engine.commands.sandbox import sandbox
from engine.commands.schema import schema
from engine.commands.send import send
from engine.commands.status import status
from engine.commands.templates import templates
from engine.commands.test import test
from engine.commands.validate import validate


@click.group(cls=NextstepGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nextstep")
def main() -> None:
    """nextstep: tell clients on WhatsApp when their case moves forward.

    Rules (YAML) say when and what; the engine ingests events, renders the templates, sends
    through 1MSG and follows each message. Exit codes: 0 ok, 1 invalid input or failed check,
    2 usage error.
    """


main.add_command(validate)
main.add_command(render)
main.add_command(test)
main.add_command(schema)
main.add_command(run)
main.add_command(status)
main.add_command(release)
main.add_command(cancel)
main.add_command(send)
main.add_command(demo)
main.add_command(ingest)
main.add_command(sandbox)
main.add_command(templates)
