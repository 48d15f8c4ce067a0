"""The ledger (outbox): the single source of truth for every notification."""

from __future__ import annotations

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.base import Store

SCHEMES = ("sqlite:///",)


def open_store(url: str) -> Store:
    """Open (and migrate) the ledger at ``url``.

    ``sqlite:///nextstep.db`` is relative to the working directory, ``sqlite:////var/x.db``
    absolute, ``sqlite:///:memory:`` a private in-memory ledger for tests.
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise StoreError(f"store {url!r} names no file (use sqlite:///nextstep.db)")
        from nextstep.engine.ledger.sqlite import SqliteStore

        return SqliteStore(path)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise StoreError(
        f"store {url!r}: unsupported scheme {scheme!r}; supported: "
        + ", ".join(f"{s}PATH" for s in SCHEMES)
        + " (for example sqlite:///nextstep.db)"
    )
