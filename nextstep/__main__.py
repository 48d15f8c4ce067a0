"""``python -m nextstep``: the ``nextstep`` command line."""

from nextstep.engine.commands.cli import main

main(prog_name="nextstep")
