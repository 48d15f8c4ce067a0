"""The ledger (outbox): the single source of truth for every notification."""

from __future__ import annotations

from nextstep import __distribution__
from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.base import Store
from nextstep.engine.ledger.copying import TableSource, TableTarget, sqlite_file

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


def open_copy_source(url: str) -> TableSource:
    """The ledger at ``url`` (``sqlite:///PATH`` or a path), migrated, read for a copy in one
    snapshot (``nextstep ledger copy``). Only SQLite ledgers are copied from."""
    if url.startswith(("postgresql://", "postgres://")):
        raise StoreError(
            "copying from a PostgreSQL ledger is not supported: --from takes a "
            "SQLite ledger (sqlite:///PATH or a path)"
        )
    path = sqlite_file(url)
    if not path.is_file():
        raise StoreError(f"no SQLite ledger at {path}")
    from nextstep.engine.ledger.sqlite.export import SqliteExport

    open_store(f"sqlite:///{path}").close()  # migrated, as a daemon of this version would
    return SqliteExport(path)


def open_copy_target(url: str) -> TableTarget:
    """The PostgreSQL ledger at ``url``, migrated, to copy into (``nextstep ledger copy``)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError(
            f"copying into {url!r} is not supported: --to takes a PostgreSQL ledger "
            "(postgresql://USER@HOST/DB)"
        )
    open_store(url).close()  # migrated (and the extra's absence named)
    from nextstep.engine.ledger.postgres.load import PostgresLoad

    return PostgresLoad(url)
