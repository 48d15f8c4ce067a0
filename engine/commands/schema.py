"""``nextstep schema``: the JSON Schema of rule files (or of nextstep.yaml) for editors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nextstep.engine.rules.editor import document
from nextstep.engine.rules.schema import Kind


@click.command()
@click.argument("kind", type=click.Choice(["rules", "config"]), default="rules")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
def schema(kind: Kind, output: Path | None) -> None:
    """Print the JSON Schema (Draft 2020-12) of rule files, or of nextstep.yaml with `config`.

    For yaml-language-server: `nextstep schema -o rules.schema.json`, then start a rule file
    with `# yaml-language-server: $schema=rules.schema.json`.
    """
    text = json.dumps(document(kind), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
