"""``nextstep release ID`` and ``nextstep cancel ID``: the operator's decision on a notification
left in doubt (the provider may or may not have sent it), safe while the daemon runs."""

from __future__ import annotations

import time
from pathlib import Path

import click

from nextstep.engine.commands import EXIT_INVALID, config_option
from nextstep.engine.commands.status import open_ledger, store_option
from nextstep.engine.model import State


@click.command()
@click.argument("notification_id", type=int, metavar="ID")
@config_option
@store_option
def release(notification_id: int, config_path: Path, store_url: str | None) -> None:
    """Send an in-doubt notification again (queue it)."""
    with open_ledger(config_path, store_url) as store:
        current = store.get(notification_id)
        if current is None:
            raise click.ClickException(f"no notification #{notification_id}")
        if current.state is not State.IN_DOUBT:
            click.echo(
                f"#{notification_id} is {current.state}, not in doubt: nothing released", err=True
            )
            raise SystemExit(EXIT_INVALID)
        if not store.release(notification_id, time.time()):
            click.echo(f"#{notification_id} changed meanwhile: nothing released", err=True)
            raise SystemExit(EXIT_INVALID)
    click.echo(f"#{notification_id} released: queued to be sent again")


@click.command()
@click.argument("notification_id", type=int, metavar="ID")
@click.option("--reason", default="cancelled by operator", show_default=True)
@config_option
@store_option
def cancel(notification_id: int, reason: str, config_path: Path, store_url: str | None) -> None:
    """Cancel a queued or in-doubt notification."""
    with open_ledger(config_path, store_url) as store:
        current = store.get(notification_id)
        if current is None:
            raise click.ClickException(f"no notification #{notification_id}")
        if not store.cancel(notification_id, time.time(), reason):
            click.echo(f"#{notification_id} is {current.state}: it cannot be cancelled", err=True)
            raise SystemExit(EXIT_INVALID)
    click.echo(f"#{notification_id} cancelled ({reason})")
