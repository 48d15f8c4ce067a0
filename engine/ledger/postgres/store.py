"""The PostgreSQL ledger (``postgresql://…``): a psycopg 3 connection pool, the same named
migrations as SQLite, the same behaviour (one contract suite runs against both).

A write is ``with conn.transaction()`` on a pooled connection; a read is one statement on an
autocommit connection (every read the :class:`Store` offers is one statement, so it is
consistent by itself and costs one round trip, not three). The store stays synchronous: the
daemon calls it on the ledger thread (:class:`LedgerRunner`), like SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.base import (
    AttemptResult,
    InboundStored,
    NewInbound,
    Notification,
    OptOut,
    OptOutResult,
)
from nextstep.engine.ledger.leases import Recovered
from nextstep.engine.ledger.migrations import MIGRATIONS
from nextstep.engine.ledger.postgres import slots, text
from nextstep.engine.ledger.postgres.console import PostgresConsoleReads
from nextstep.engine.ledger.postgres.optouts import EXCLUSIVE, INBOUND, SHARED
from nextstep.engine.ledger.postgres.retention import PostgresPruning
from nextstep.engine.ledger.postgres.sourcelock import PostgresSourceLock
from nextstep.engine.ledger.postgres.sql import Conn, unique
from nextstep.engine.ledger.postgres.transaction import PostgresTransaction
from nextstep.engine.ledger.transactional import TransactionalStore

POOL_SIZE = 4  # the ledger thread, a status reader, a CLI command beside them
# SQLite's WAL + synchronous=NORMAL durability: a commit survives nextstep's process dying at
# once, and the server or the machine crashing loses at most its last moment of commits, never
# corrupts. It spares the send path a WAL flush per commit (milliseconds on many disks); a URL
# with its own ``options`` (``?options=-c%20synchronous_commit%3Don``) is left as it is.
SESSION_OPTIONS = "-c synchronous_commit=off"
CONNECT_TIMEOUT = 10  # seconds, to reach the server or get a connection from the pool
# Every process that opens the ledger migrates it first; this lock makes them take turns.
_MIGRATION_LOCK = "SELECT pg_advisory_lock(hashtext('nextstep ledger migrations'))"
_MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('nextstep ledger migrations'))"
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def shown(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


# (name, PostgreSQL SQL) of every migration, in order.
STEPS = tuple((migration.name, migration.postgres) for migration in MIGRATIONS)


def migrate(conn: Conn, migrations: Sequence[tuple[str, str]] = STEPS) -> list[str]:
    """Apply the migrations not yet applied, each in one transaction with its bookkeeping row,
    under an advisory lock (concurrent first starts take turns); returns the names applied now.
    ``conn`` is an autocommit connection."""
    applied: list[str] = []
    conn.execute(_MIGRATION_LOCK)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations ("
            "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for name, sql in migrations:
            try:
                with conn.transaction():
                    if conn.execute("SELECT 1 FROM migrations WHERE name = %s", (name,)).fetchone():
                        continue
                    conn.execute(sql)  # several statements: no parameters, one message
                    conn.execute("INSERT INTO migrations (name) VALUES (%s)", (name,))
            except psycopg.Error as exc:
                raise StoreError(f"ledger migration {name} failed: {exc}") from exc
            applied.append(name)
    finally:
        conn.execute(_MIGRATION_UNLOCK)
    return applied


def _configure(conn: Conn) -> None:
    text.register(conn)


class PostgresStore(PostgresPruning, PostgresConsoleReads, TransactionalStore):
    """The shared ledger (``postgresql://user@host/db``), for several processes at once."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.name = shown(url)
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the ledger {self.name}: {exc}") from exc
        kwargs: dict[str, object] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
        if "options" not in conninfo_to_dict(url):
            kwargs["options"] = SESSION_OPTIONS
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=kwargs,
            configure=_configure,
            timeout=CONNECT_TIMEOUT,
            open=False,
            name="nextstep-ledger",
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreError(f"cannot open the ledger {self.name}: {exc}") from exc

    def close(self) -> None:
        """Close the pool's connections (idempotent)."""
        self._pool.close()

    def source_lock(self, name: str) -> PostgresSourceLock:
        """The advisory lock of the trigger source ``name`` (not yet taken)."""
        return PostgresSourceLock(self.url, name)

    @contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """One write transaction; commits on success, rolls back on any error; psycopg errors
        become :class:`StoreError`."""
        try:
            # Pipeline mode: statements whose results nobody reads (BEGIN, most updates and
            # inserts, COMMIT) travel with the next one that is read, not one round trip each.
            with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
                conn.execute(SHARED)  # first, before any row lock (postgres/optouts.py)
                yield PostgresTransaction(conn)
        except psycopg.Error as exc:
            raise StoreError(f"ledger {self.name}: {exc}") from exc

    @contextmanager
    def _locked(self, *locks: str) -> Iterator[PostgresTransaction]:
        """A write transaction that takes ``locks`` (advisory, exclusive) before anything
        else, instead of the opt-out lock in shared mode."""
        try:
            with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
                for lock in locks:
                    conn.execute(lock)
                yield PostgresTransaction(conn)
        except psycopg.Error as exc:
            raise StoreError(f"ledger {self.name}: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[PostgresTransaction]:
        """Statements on an autocommit connection: for units of one statement (each is atomic
        and consistent by itself)."""
        try:
            with self._pool.connection() as conn:
                yield PostgresTransaction(conn)
        except psycopg.Error as exc:
            raise StoreError(f"ledger {self.name}: {exc}") from exc

    # -- the send path: units of one statement need no BEGIN and COMMIT round trips ----------
    def lease_due(
        self,
        now: float,
        limit: int,
        channels: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> list[Notification]:
        """Lease due notifications (one statement: expire, then lease)."""
        with self.reading() as tx:
            return tx.lease_due(now, limit, channels, ids, owner, lease_until)

    def record_attempts(self, results: Sequence[AttemptResult], owner: str | None = None) -> None:
        """Apply attempt results (one statement unless a row repeats)."""
        if not results:
            return
        one = unique([r.notification_id for r in results])
        with self.reading() if one else self.transaction() as tx:
            tx.record_attempts(results, owner)

    def requeue(
        self, items: Sequence[tuple[int, float]], now: float, owner: str | None = None
    ) -> None:
        """Give leased notifications back (one statement unless a row repeats)."""
        if not items:
            return
        one = unique([nid for nid, _ in items])
        with self.reading() if one else self.transaction() as tx:
            tx.requeue(items, now, owner)

    def mark_sending(self, ids: Sequence[int], now: float, owner: str | None = None) -> list[int]:
        """Mark rows about to be sent (one statement)."""
        if not ids:
            return []
        with self.reading() as tx:
            return tx.mark_sending(ids, now, owner)

    def claim_recipients(
        self, claims: Sequence[tuple[str, str, float]], now: float
    ) -> dict[tuple[str, str], float]:
        """Claim send slots per recipient across workers (one statement per spacing)."""
        if not claims:
            return {}
        with self.reading() as tx:
            return slots.claim(tx.connection, claims, now)

    def renew_leases(self, owner: str, until: float) -> int:
        """Extend ``owner``'s leases (one statement)."""
        with self.reading() as tx:
            return tx.renew_leases(owner, until)

    def recover(self, now: float, gone: Sequence[str] | None = None) -> Recovered:
        """Recover expired leases and those of gone owners (one statement)."""
        with self.reading() as tx:
            return tx.recover(now, gone)

    def recover_interrupted(self, now: float) -> int:
        """Every ``sending`` row: marked ones in doubt, the others due again (one statement)."""
        with self.reading() as tx:
            return tx.recover_interrupted(now)

    # -- opt-outs and inbound messages: the opt-out lock exclusively, before anything -------
    def add_optouts(self, entries: Sequence[OptOut]) -> OptOutResult:
        """Keep opt-outs and skip the queued notifications they stop (see Store)."""
        with self._locked(EXCLUSIVE) as tx:
            return tx.add_optouts(entries)

    def record_inbound(self, items: Sequence[NewInbound]) -> list[InboundStored | None]:
        """Keep inbound messages once and apply what new ones ask (see Store)."""
        locks = (EXCLUSIVE, INBOUND) if any(i.optout for i in items) else (INBOUND,)
        with self._locked(*locks) as tx:
            return tx.record_inbound(items)
