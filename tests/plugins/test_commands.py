"""Commands plug-ins add (group ``nextstep.commands``), and the trigger ``nextstep ingest``
chooses to read a file with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nextstep.engine.commands.cli import main
from nextstep.engine.commands.ingest import file_reader
from nextstep.engine.errors import UsageError
from nextstep.engine.plugins.registry import COMMANDS
from tests.rules.helpers import one_rule
from tests.support.distributions import write_distribution

HELLO = """
import click


@click.command()
def hello() -> None:
    \"\"\"Say hello from a plug-in.\"\"\"
    click.echo("hello")
"""


def test_the_bundled_commands_come_from_their_plug_ins() -> None:
    assert {"sandbox", "demo"} <= set(main.commands)  # type: ignore[attr-defined]


def test_a_broken_command_plug_in_does_not_break_the_command_line(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "acme-commands",
        {
            COMMANDS: {
                "hello": "acme_hello:hello",
                "boom": "acme_boom3:x",
                "odd": "acme_hello:HELLO",
            }
        },
        {"acme_hello": HELLO + "\nHELLO = 'not a command'\n", "acme_boom3": "raise KeyError(1)\n"},
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "120"}
    cli = "from nextstep.engine.commands.cli import main; main()"
    listed = subprocess.run(
        [sys.executable, "-c", cli, "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert "hello      Say hello from a plug-in." in listed.stdout
    assert "sandbox" in listed.stdout and "boom" not in listed.stdout
    warnings = [line for line in listed.stderr.splitlines() if "is not available" in line]
    assert len(warnings) == 2, listed.stderr
    assert any(
        "command 'boom' is not available: importing acme_boom3:x failed" in w for w in warnings
    )
    assert any("acme_hello:HELLO is not a click.core.Command" in w for w in warnings)
    ran = subprocess.run(
        [sys.executable, "-c", cli, "hello"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (ran.returncode, ran.stdout) == (0, "hello\n")


def test_ingest_reads_with_the_rule_s_trigger_or_the_one_for_the_suffix(tmp_path: Path) -> None:
    on_csv = one_rule(
        tmp_path,
        """\
        trigger: {csv: {path: "in/*.csv", delimiter: ";"}}
        send: {channel: crm, body: {x: 1}}
        """,
    )
    assert file_reader(on_csv, Path("export.csv")) == (
        "csv",
        {"path": "in/*.csv", "delimiter": ";"},
    )
    on_http = one_rule(
        tmp_path,
        """\
        trigger: {http: {path: /events/x}}
        send: {channel: crm, body: {x: 1}}
        """,
    )
    assert file_reader(on_http, Path("export.CSV")) == ("csv", {"path": "export.CSV"})
    assert file_reader(on_http, Path("export.xlsx")) == ("xlsx", {"path": "export.xlsx"})
    # no trigger claims the suffix and several read files: which one is not guessed
    with pytest.raises(UsageError, match=r"no installed trigger reads export.dat \(csv: .csv"):
        file_reader(on_http, Path("export.dat"))
    # the rule's own reader reads any suffix
    assert file_reader(on_csv, Path("export.dat"))[0] == "csv"
