"""``nextstep ledger copy``: move a SQLite ledger into PostgreSQL, ids and all, to run several
workers on it (docs/scaling.md).

Exit codes: 0 copied; 1 refused or failed (a daemon holds the source, the target holds rows,
the ledgers have applied different migrations, a database error), nothing written then;
2 usage (a --from that is not SQLite, a --to that is not PostgreSQL).
"""

from __future__ import annotations

import json
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nextstep.engine.ledger import open_copy_source, open_copy_target
from nextstep.engine.ledger.copying import (
    DEFAULT_BATCH,
    CopySummary,
    TableSource,
    TableTarget,
    copy_ledger,
    not_in_use,
    sqlite_file,
)

_POSTGRES = ("postgresql://", "postgres://")


@click.group()
def ledger() -> None:
    """Work on the ledger as a whole (copy it into another database)."""


@ledger.command()
@click.option(
    "--from",
    "source_url",
    required=True,
    metavar="SQLITE",
    help="The SQLite ledger to copy: sqlite:///PATH or a path (the store: of nextstep.yaml).",
)
@click.option(
    "--to",
    "target_url",
    required=True,
    metavar="POSTGRESQL_URL",
    help="The PostgreSQL ledger to copy into: postgresql://USER@HOST/DB (migrated if new).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Empty the target first when it already holds rows (else the copy is refused).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Rows read from the source at a time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def copy(source_url: str, target_url: str, replace: bool, batch: int, as_json: bool) -> None:
    """Copy every table of a SQLite ledger into PostgreSQL, keeping ids.

    Stop the daemon first (a ledger a daemon holds is refused). The target is written in one
    transaction: it gets every row or none. Then point store: at the PostgreSQL URL and start
    the workers.
    """
    if source_url.startswith(_POSTGRES):
        raise click.BadParameter("copying from PostgreSQL is not supported", param_hint="--from")
    if not target_url.startswith(_POSTGRES):
        raise click.BadParameter(
            "the target must be a PostgreSQL ledger (postgresql://USER@HOST/DB)",
            param_hint="--to",
        )
    with not_in_use(sqlite_file(source_url)):
        source = open_copy_source(source_url)
        try:
            target = open_copy_target(target_url)
            try:
                summary = _copy(source, target, replace=replace, batch=batch, bar=not as_json)
            finally:
                target.close()
        finally:
            source.close()
    if as_json:
        click.echo(json.dumps(summary.as_json(), sort_keys=True))
    else:
        click.echo(describe(summary))


def _copy(
    source: TableSource, target: TableTarget, *, replace: bool, batch: int, bar: bool
) -> CopySummary:
    total = sum(table.rows for table in source.tables())
    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows  {task.fields[rate]:>8,.0f} rows/s  ETA"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=Console(stderr=True), disable=not bar) as progress:
        task = progress.add_task("copying", total=total or 1, rate=0.0)

        def on_rows(table: str, n: int) -> None:
            done = progress.tasks[0].completed + n
            rate = done / max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=done, description=table, rate=rate)

        summary = copy_ledger(source, target, replace=replace, batch=batch, on_rows=on_rows)
        progress.update(task, completed=total or 1, description="copied")
    return summary


def describe(summary: CopySummary) -> str:
    """The summary printed after a copy: rows by table, then where to go from here."""
    emptied = " (emptied first)" if summary.replaced else ""
    lines = [f"copied {summary.source} into {summary.target}{emptied}:"]
    lines += [f"  {name:<18} {rows:>12,}" for name, rows in summary.tables.items()]
    lines.append(f"  {'total':<18} {summary.rows:>12,} rows in {summary.seconds:.1f} s")
    lines.append("next: set store: to the PostgreSQL URL in nextstep.yaml and start the workers")
    return "\n".join(lines)
