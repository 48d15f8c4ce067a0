"""Ledgers of every backend for the contract suite: a SQLite file in the test's folder, or the
PostgreSQL database this session created (``nextstep_test_<random>``, dropped at the end),
emptied before each test."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Notification
from tests.support.services import POSTGRES_URL

SQLITE, POSTGRES = "sqlite", "postgres"  # the backends the contract suite runs on
TABLES = (
    "notifications, history, acks, progress, rule_versions, optouts, inbound_messages, workers, "
    "recipient_slots, packing"
)


def plain_url(url: str, database: str | None = None) -> str:
    """A libpq URL from the SQLAlchemy one (``postgresql+psycopg://``), on ``database``."""
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    if database is not None:
        url = url.rsplit("/", 1)[0] + "/" + database
    return url


class PostgresLedgers:
    """One database for the whole session; :meth:`fresh` empties it and gives its URL."""

    def __init__(self) -> None:
        self.admin = plain_url(POSTGRES_URL)
        self.database = f"nextstep_test_{secrets.token_hex(4)}"
        self.url = plain_url(POSTGRES_URL, self.database)
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self._emptying: psycopg.Connection[tuple[object, ...]] | None = None

    def fresh(self) -> str:
        """The URL of the session's database with every ledger table empty (ids from 1)."""
        if self._emptying is None:
            from nextstep.engine.ledger import open_store

            open_store(self.url).close()  # migrated
            self._emptying = psycopg.connect(self.url, autocommit=True)
            self._emptying.execute("SET lock_timeout = '10s'")  # a store left open fails, not hangs
        self._emptying.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        return self.url

    def drop(self) -> None:
        """Drop the session's database (whatever is still connected to it)."""
        if self._emptying is not None:
            self._emptying.close()
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_ledgers() -> Iterator[PostgresLedgers]:
    """The session's PostgreSQL ledgers, dropped at the end."""
    ledgers = PostgresLedgers()
    try:
        yield ledgers
    finally:
        ledgers.drop()


def sqlite_url(folder: Path) -> str:
    """A new SQLite ledger file in ``folder``."""
    return f"sqlite:///{folder / 'ledger.db'}"


def notifications_in(ledger: Path, limit: int) -> list[Notification]:
    """Up to ``limit`` notifications of the SQLite ledger file ``ledger``, read through the
    store (their fields, event and trigger are packed since migration 0011)."""
    store = open_store(f"sqlite:///{ledger}")
    try:
        return store.list(limit=limit)
    finally:
        store.close()
