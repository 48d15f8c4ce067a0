"""The embedded SQLite ledger backend (``sqlite:///path``): the only package that imports
``sqlite3`` inside the engine."""

from __future__ import annotations

from nextstep.engine.ledger.sqlite.store import SqliteStore, migrate
from nextstep.engine.ledger.sqlite.transaction import SqliteTransaction

__all__ = ["SqliteStore", "SqliteTransaction", "migrate"]
