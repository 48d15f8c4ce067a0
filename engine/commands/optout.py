"""``nextstep optout add|remove|list|import|export``: the operator's side of the opt-out list,
safe while the daemon runs (the ledger is the only place it lives).

Numbers are read like a rule's ``to:`` (``default_country`` of nextstep.yaml); ``--channel``
names a channel of nextstep.yaml, or ``*`` / ``all`` for every channel (the default). Adding
skips what is queued for the recipient at once; every command is idempotent.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from nextstep.engine.commands import EXIT_INVALID, config_option, load
from nextstep.engine.errors import NextstepError
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import OptOut, Store
from nextstep.engine.model import ALL_CHANNELS
from nextstep.engine.optout import entries
from nextstep.engine.optout.entries import Directory, EntryError
from nextstep.engine.optout.listfile import read_optouts, write_optouts

_CHANNEL = click.option(
    "--channel",
    default=None,
    metavar="NAME",
    help="A channel of nextstep.yaml, or * for every channel.",
)


@contextlib.contextmanager
def _opened(config_path: Path) -> Iterator[tuple[Store, Directory]]:
    config = load(config_path)
    try:
        store = open_store(config.store)
    except NextstepError as exc:
        click.echo(f"cannot open the ledger: {exc}", err=True)
        raise SystemExit(EXIT_INVALID) from exc
    try:
        yield store, Directory(config.default_country, tuple(config.channels))
    finally:
        store.close()


def _entry(directory: Directory, phone: str, channel: str | None) -> tuple[str, str | None]:
    try:
        recipient = directory.recipient(phone)
        return recipient, None if channel is None else directory.channel(channel)
    except EntryError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
def optout() -> None:
    """Keep people who asked for no more messages (the opt-out list)."""


@optout.command()
@click.argument("phone")
@_CHANNEL
@click.option("--note", default="", help="Why, or who recorded it (kept with the opt-out).")
@config_option
def add(phone: str, channel: str | None, note: str, config_path: Path) -> None:
    """Opt a phone number out (of every channel, or of --channel)."""
    with _opened(config_path) as (store, directory):
        recipient, scope = _entry(directory, phone, channel)
        scope = scope or ALL_CHANNELS
        done = entries.add(store, [OptOut(recipient, scope, time.time(), "cli", note)])
    where = entries.describe(scope)
    if not done.added:
        click.echo(f"{recipient}: already opted out of {where}")
        return
    skipped = len(done.skipped)
    click.echo(
        f"{recipient}: opted out of {where}; "
        f"{skipped} queued notification{'s' if skipped != 1 else ''} skipped"
    )


@optout.command()
@click.argument("phone")
@_CHANNEL
@config_option
def remove(phone: str, channel: str | None, config_path: Path) -> None:
    """Lift a phone number's opt-outs (all of them, or that of --channel)."""
    with _opened(config_path) as (store, directory):
        recipient, scope = _entry(directory, phone, channel)
        removed = entries.remove(store, recipient, scope, "cli")
    click.echo(f"{recipient}: {removed} opt-out{'s' if removed != 1 else ''} removed")


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@optout.command(name="list")
@click.option("--phone", default=None, help="Only this number's opt-outs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@config_option
def list_(phone: str | None, as_json: bool, config_path: Path) -> None:
    """Show the opt-out list."""
    with _opened(config_path) as (store, directory):
        wanted = None if phone is None else [_entry(directory, phone, None)[0]]
        kept = store.optouts(recipients=wanted)
    if as_json:
        for o in kept:
            click.echo(
                json.dumps(
                    {
                        "phone": o.recipient,
                        "channel": o.channel,
                        "at": o.at,
                        "how": o.how,
                        "note": o.note,
                    },
                    ensure_ascii=False,
                )
            )
        return
    if not kept:
        click.echo("no opt-outs")
        return
    for o in kept:
        note = f"  {o.note}" if o.note else ""
        click.echo(f"{o.recipient}  {o.channel:<10} {_when(o.at)}  {o.how:<7}{note}".rstrip())
    click.echo(f"{len(kept)} opt-out{'s' if len(kept) != 1 else ''}")


@optout.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def import_(file: Path, config_path: Path) -> None:
    """Add every opt-out of a comma-separated file (columns phone, channel, note, at)."""
    text = file.read_text(encoding="utf-8-sig", errors="replace")
    with _opened(config_path) as (store, directory):
        found = read_optouts(text, directory, time.time())
        done = entries.add(store, found.entries)
    for problem in found.problems:
        click.echo(f"{file}: {problem}", err=True)
    skipped = len(done.skipped)
    click.echo(
        f"{done.added} added, {done.already} already there, "
        f"{skipped} queued notification{'s' if skipped != 1 else ''} skipped"
    )
    if found.problems:
        count = len(found.problems)
        click.echo(f"{count} line{'s' if count != 1 else ''} not imported", err=True)
        raise SystemExit(EXIT_INVALID)


@optout.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@config_option
def export(file: Path | None, config_path: Path) -> None:
    """Write the opt-out list, comma-separated (to FILE, or to standard output)."""
    with _opened(config_path) as (store, _):
        kept = store.optouts()
    if file is None:
        write_optouts(kept, sys.stdout)
        return
    with file.open("w", encoding="utf-8", newline="") as out:
        count = write_optouts(kept, out)
    click.echo(f"{count} opt-out{'s' if count != 1 else ''} written to {file}", err=True)
