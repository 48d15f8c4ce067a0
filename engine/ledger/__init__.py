"""The ledger (outbox): the single source of truth for every notification."""

from __future__ import annotations

from nextstep import __distribution__
from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.base import Store

SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
POSTGRES_EXTRA = f"pip install '{__distribution__}[postgres]'"


def open_store(url: str) -> Store:
    """Open (and migrate) the ledger at ``url``; the scheme chooses the backend.

    ``sqlite:///nextstep.db`` is relative to the working directory, ``sqlite:////var/x.db``
    absolute, ``sqlite:///:memory:`` a private in-memory ledger for tests.
    ``postgresql://user:password@host:5432/db`` (or ``postgres://…``; any libpq URI) is a
    PostgreSQL database several processes share; it needs the ``postgres`` extra.
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise StoreError(f"store {url!r} names no file (use sqlite:///nextstep.db)")
        from nextstep.engine.ledger.sqlite import SqliteStore

        return SqliteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from nextstep.engine.ledger.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"a PostgreSQL ledger needs psycopg and psycopg_pool ({exc.name} is missing): "
                f"{POSTGRES_EXTRA}"
            ) from exc
        return PostgresStore(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise StoreError(
        f"store {url!r}: unsupported scheme {scheme!r}; supported: sqlite:///PATH, "
        "postgresql://USER@HOST/DB (for example sqlite:///nextstep.db)"
    )
