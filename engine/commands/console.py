"""``nextstep console hash-password``: the password hash a console user's config entry keeps
(``server.console.users[].password_hash``, docs/console.md)."""

from __future__ import annotations

import sys

import click

from nextstep.engine.errors import UsageError
from nextstep.engine.runtime.console.passwords import hash_password


@click.group()
def console() -> None:
    """The web console at /ui (its users)."""


@console.command("hash-password")
def hash_password_command() -> None:
    """Read a password (typed without echo, or one line of standard input) and print its
    scrypt hash for server.console.users[].password_hash."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("the password is empty")
    click.echo(hash_password(password))
