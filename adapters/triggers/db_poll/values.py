"""Values of the ``db_poll`` trigger: cursor values to and from JSON, column values as events
carry them, the retry delay after failed polls, and SQLite paths relative to the config."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from nextstep.engine.backoff import capped_doubling

EPOCH = dt.datetime(1970, 1, 1)
MAX_RETRY_DELAY = 300.0


class PollError(Exception):
    """A poll's rows cannot be used (e.g. they lack the cursor column)."""


def retry_delay(failures: int, every: float) -> float:
    """Wait after ``failures`` failed polls in a row: ``every`` doubling, at most 5 minutes."""
    return capped_doubling(failures, max(every, 1.0), max(every, MAX_RETRY_DELAY))


def dump_value(value: Any) -> Any:
    """A cursor value as JSON that :func:`load_value` turns back into the same type."""
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, UUID):
        return {"uuid": str(value)}
    if value is None or isinstance(value, int | float | str):
        return value
    raise PollError(f"a cursor of type {type(value).__name__} is not supported")


def load_value(value: Any) -> Any:
    """The inverse of :func:`dump_value`."""
    if isinstance(value, dict):
        ((kind, text),) = value.items()
        loaders: dict[str, Callable[[str], Any]] = {
            "datetime": dt.datetime.fromisoformat,
            "date": dt.date.fromisoformat,
            "decimal": Decimal,
            "uuid": UUID,
        }
        return loaders[kind](text)
    return value


def jsonable(value: Any) -> Any:
    """A column value as events carry it (JSON types; times as ISO text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def sqlite_in_folder(url: sa.URL, base_dir: str) -> sa.URL:
    """A SQLite URL with a relative file (``sqlite:///crm.db``) resolved against the config's
    folder, as the ledger's own URL is, not against the process's working directory."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if url.query.get("uri") or database.startswith("file:") or os.path.isabs(database):
        return url
    return url.set(database=os.path.join(base_dir, database))
