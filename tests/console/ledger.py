"""The ledger as the console tests use it: a store of any backend with the console's reads."""

from __future__ import annotations

from typing import Protocol

from nextstep.engine.ledger.base import Store
from nextstep.engine.ledger.reads import ConsoleReads


class Ledger(Store, ConsoleReads, Protocol):
    """A store with the console's reads (every backend's)."""


def console_ledger(store: Store) -> Ledger:
    """``store`` as a :class:`Ledger` (every backend has the console's reads)."""
    assert isinstance(store, ConsoleReads)
    return store
