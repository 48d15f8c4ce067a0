"""The ``nextstep`` command line: a thin click group; each command is a module of this package.

Commands join with ``main.add_command(...)`` at the end of this file, followed by the commands
installed plug-ins add (entry points of group ``nextstep.commands``; one that cannot be loaded is
logged and left out). Shared options and helpers (``config_option``, ``load``) are in
:mod:`nextstep.engine.commands`.
"""

from __future__ import annotations

import click

from nextstep import __version__
from nextstep.engine.commands import NextstepGroup
from nextstep.engine.commands.console import console
from nextstep.engine.commands.in_doubt import cancel, release
from nextstep.engine.commands.ingest import ingest
from nextstep.engine.commands.ledger import ledger
from nextstep.engine.commands.optout import optout
from nextstep.engine.commands.render import render
from nextstep.engine.commands.run import run
from nextstep.engine.commands.schema import schema
from nextstep.engine.commands.send import send
from nextstep.engine.commands.status import status
from nextstep.engine.commands.templates import templates
from nextstep.engine.commands.test import test
from nextstep.engine.commands.validate import validate
from nextstep.engine.plugins.registry import command_plugins


@click.group(cls=NextstepGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nextstep")
def main() -> None:
    """nextstep: tell clients on WhatsApp when their case moves forward.

    Rules (YAML) say when and what; the engine ingests events, renders the templates, sends
    through the configured channels and follows each message. Exit codes: 0 ok, 1 invalid
    input or failed check, 2 usage error.
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
main.add_command(ingest)
main.add_command(templates)
main.add_command(optout)
main.add_command(console)
main.add_command(ledger)
for _name, _command in sorted(command_plugins().items()):
    main.add_command(_command, _name)
