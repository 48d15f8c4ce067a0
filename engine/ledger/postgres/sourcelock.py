"""A trigger source's lock on PostgreSQL: ``pg_try_advisory_lock`` on a connection of its own
(not the pool's), so that it lasts exactly as long as its worker's session. A worker killed
by SIGKILL closes its socket and PostgreSQL ends the session and the lock at once; keepalives
on both ends bound how long a vanished host (no FIN) can hold it."""

from __future__ import annotations

import contextlib

import psycopg

from nextstep.engine.ledger.leases import source_key

CONNECT_TIMEOUT = 10
# The server drops a silent client's session (and its locks) after about 5 + 2 × 2 s.
KEEPALIVES = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=2 "
    "-c synchronous_commit=off"
)


class PostgresSourceLock:
    """One source's advisory lock, taken with :meth:`acquire`, watched with :meth:`alive`."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.key = source_key(name)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._held = False

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._held = False
            self._conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                options=KEEPALIVES,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=2,
            )
        return self._conn

    def acquire(self) -> bool:
        """Take the lock if no other session holds it; False otherwise or when the database
        cannot be reached (the caller tries again)."""
        if self._held and self.alive():
            return True
        try:
            row = (
                self._connection()
                .execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                .fetchone()
            )
        except psycopg.Error:
            self.close()
            return False
        self._held = bool(row and row[0])
        return self._held

    def alive(self) -> bool:
        """Still held: the session answers (a lost session lost its lock with it)."""
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1").fetchone()
        except psycopg.Error:
            self.close()
            return False
        return True

    def close(self) -> None:
        """End the session, which releases the lock."""
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
