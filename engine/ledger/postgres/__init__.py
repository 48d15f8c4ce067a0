"""The PostgreSQL ledger backend (``postgresql://…``, the ``postgres`` extra: psycopg 3 and
psycopg_pool): the only package of the engine that imports them."""

from __future__ import annotations

from nextstep.engine.ledger.postgres.store import PostgresStore, migrate
from nextstep.engine.ledger.postgres.transaction import PostgresTransaction

__all__ = ["PostgresStore", "PostgresTransaction", "migrate"]
