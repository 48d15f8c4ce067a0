"""The ``db_poll`` trigger: rows of a database query become events, read with a moving cursor.

::

    trigger:
      db_poll:
        url: postgresql+psycopg://reader@db/crm    # any SQLAlchemy URL; sqlite:///crm.db
                                                   # is relative to the config's folder
        query: >
          SELECT id, updated_at, first_name, phone, stage FROM applications
          WHERE updated_at > :cursor OR (updated_at = :cursor AND id > :cursor_id)
          ORDER BY updated_at, id
          LIMIT :batch
        cursor: updated_at      # the column the query orders by
        id: id                  # the tie-break column, for rows sharing a cursor value
        every: 10s              # how often to look
        delay: 5s               # rows newer than now - delay are left for a later poll
        batch: 500              # rows per poll and per ledger transaction
        start: now              # first cursor: now | beginning | an ISO time | a number
        timezone: UTC           # the zone of the database's naive timestamps
        name: crm-applications  # optional: keeps the cursor when the query is edited

What the query must contain: the bound parameter ``:cursor`` (and ``:cursor_id`` when ``id``
is set) in a condition that selects rows strictly after the pair (cursor, id), e.g. the
portable ``col > :cursor OR (col = :cursor AND id > :cursor_id)`` or the row value
``(col, id) > (:cursor, :cursor_id)`` (PostgreSQL, MariaDB, SQLite); ``ORDER BY col, id``;
and, to keep each poll small, ``LIMIT :batch``. Only the first ``batch`` rows are read.
On the very first poll ``:cursor_id`` is NULL, so rows exactly at ``start`` are not read.

The cursor is the last row's (cursor, id) pair, committed in the ledger with the notifications
of its batch: it survives restarts, and no row is skipped or repeated. Values only ever reach
the database as bound parameters. The query runs in a read-only transaction that is rolled back.
A database that cannot be reached is retried with backoff and reported by :meth:`status`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from nextstep.adapters.triggers.config import ConfigReader, read_progress
from nextstep.engine.backoff import capped_doubling
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import Emit, TriggerContext

log = logging.getLogger(__name__)

_KEYS = ("url", "query", "cursor", "id", "every", "delay", "batch", "start", "timezone", "name")
_READ_ONLY_START = re.compile(r"^\s*(\(\s*)*(select|with)\b", re.IGNORECASE)
_CONNECT_ARGS = {
    "postgresql": {"connect_timeout": 10},
    "mysql": {"connect_timeout": 10, "read_timeout": 120},
    "mariadb": {"connect_timeout": 10, "read_timeout": 120},
}
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


class DbPollTrigger:
    """Polls one query and turns its new rows into events, in cursor order."""

    kind: ClassVar[str] = "db_poll"

    @staticmethod
    def source_key(config: Mapping[str, Any]) -> str:
        """``name`` if given, else the URL (password hidden), cursor columns and query."""
        if config.get("name"):
            return str(config["name"])
        try:
            url = sa.make_url(str(config.get("url", ""))).render_as_string(hide_password=True)
        except ArgumentError:
            url = "?"
        query = " ".join(str(config.get("query", "")).split())
        digest = hashlib.sha256(query.encode()).hexdigest()[:12]
        return f"{url}#{config.get('cursor')},{config.get('id')}:{digest}"

    def __init__(self, config: Mapping[str, Any], context: TriggerContext) -> None:
        read = ConfigReader("db_poll", config, _KEYS)
        self.url = read.text("url", required=True)
        self.query = read.text("query", required=True)
        self.cursor_column = read.text("cursor", required=True)
        self.id_column = read.text("id") or None
        self.every = read.duration("every", 10.0)
        self.delay = read.duration("delay", 0.0)
        self.batch = read.positive_int("batch", 500)
        self.timezone = self._zone(read, read.text("timezone", "UTC"))
        self.start = self._start(read, config.get("start", "now"))
        self._statement, self._params = self._check_query(read)
        self._check_url(read)
        read.finish()
        self.context = context
        self.source = self.source_key(config)
        self.progress_key = f"db_poll:{self.source}"
        self._engine: Engine | None = None
        self._status: dict[str, Any] = {
            "state": "starting",
            "last_poll_at": None,
            "last_error": None,
            "last_error_at": None,
            "failures": 0,
            "rows_read": 0,
            "cursor": None,
        }

    @staticmethod
    def _zone(read: ConfigReader, name: str) -> ZoneInfo:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            read.fail("timezone", f"{name!r} is not a time zone (e.g. UTC, Europe/Madrid)")
            return ZoneInfo("UTC")

    @staticmethod
    def _start(read: ConfigReader, start: Any) -> Any:
        """``now`` (kept as is, resolved at the first poll), else the first cursor value."""
        if start == "now":
            return start
        if start == "beginning":
            return EPOCH
        if isinstance(start, str):
            try:
                return dt.datetime.fromisoformat(start)
            except ValueError:
                pass
        elif isinstance(start, dt.datetime | dt.date | int | float) and not isinstance(start, bool):
            return start
        read.fail("start", f"{start!r} is not now, beginning, an ISO time or a number")
        return "now"

    def _check_query(self, read: ConfigReader) -> tuple[sa.TextClause, frozenset[str]]:
        statement = sa.text(self.query)
        params = frozenset(statement.compile().params)
        needed = {"cursor"} | ({"cursor_id"} if self.id_column else set())
        for name in sorted(needed - params):
            read.fail("query", f"must use the bound parameter :{name}")
        if self.query and not _READ_ONLY_START.match(self.query):
            read.fail("query", "must be a SELECT (or WITH … SELECT); the trigger only reads")
        return statement, params

    def _check_url(self, read: ConfigReader) -> None:
        if not self.url:
            return
        try:
            sa.make_url(self.url)
        except ArgumentError as exc:
            read.fail("url", f"is not a SQLAlchemy URL: {exc}")

    # -- the daemon's side ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """State (ok | error | starting), last poll and error, rows read, current cursor."""
        return dict(self._status)

    async def run(self, emit: Emit) -> None:
        """Poll every ``every`` until cancelled; a failing database is retried with backoff."""
        stored = await read_progress(self.context, self.progress_key)
        cursor = self._initial_cursor() if stored is None else self._load(stored)
        self._status["cursor"] = [dump_value(v) for v in cursor]
        try:
            while True:
                try:
                    rows = await asyncio.to_thread(self._fetch, cursor)
                except (SQLAlchemyError, OSError, PollError) as exc:
                    await self._failed(exc)
                    continue
                ready = self._old_enough(rows)
                if ready:
                    cursor = await self._emit(emit, ready)
                self._status.update(state="ok", failures=0, last_poll_at=self.context.clock.now())
                if len(rows) < self.batch or len(ready) < len(rows):
                    await self.context.clock.sleep(self.every)
        finally:
            engine, self._engine = self._engine, None
            if engine is not None:
                await asyncio.to_thread(engine.dispose)

    async def _failed(self, exc: Exception) -> None:
        failures = self._status["failures"] + 1
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._status.update(
            state="error",
            failures=failures,
            last_error=message,
            last_error_at=self.context.clock.now(),
        )
        wait = retry_delay(failures, self.every)
        log.warning("db_poll %s: %s; retrying in %.0fs", self.source, message, wait)
        await self.context.clock.sleep(wait)

    async def _emit(self, emit: Emit, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
        last = rows[-1]
        cursor = (last[self.cursor_column], last.get(self.id_column) if self.id_column else None)
        events = [
            Event(
                {k: jsonable(v) for k, v in row.items()},
                {
                    "kind": "db_poll",
                    "source": self.source,
                    "cursor": jsonable(row[self.cursor_column]),
                    "id": jsonable(row[self.id_column]) if self.id_column else None,
                },
            )
            for row in rows
        ]
        value = json.dumps({"cursor": dump_value(cursor[0]), "id": dump_value(cursor[1])})
        await emit(events, [Progress(self.progress_key, value)])
        self._status["rows_read"] += len(rows)
        self._status["cursor"] = [dump_value(v) for v in cursor]
        return cursor

    # -- cursor ----------------------------------------------------------------------------
    def _initial_cursor(self) -> tuple[Any, Any]:
        if self.start == "now":
            now = dt.datetime.fromtimestamp(self.context.clock.now(), self.timezone)
            return now.replace(tzinfo=None), None
        return self.start, None

    @staticmethod
    def _load(stored: str) -> tuple[Any, Any]:
        data = json.loads(stored)
        return load_value(data["cursor"]), load_value(data["id"])

    def _old_enough(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The leading rows whose cursor is at least ``delay`` old (all of them without delay)."""
        if self.delay <= 0:
            return rows
        limit = self.context.clock.now() - self.delay
        for index, row in enumerate(rows):
            at = self._seconds(row[self.cursor_column])
            if at is not None and at > limit:
                return rows[:index]
        return rows

    def _seconds(self, value: Any) -> float | None:
        """A cursor value as Unix seconds: times (naive ones in ``timezone``) and numbers."""
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=self.timezone)
            return aware.timestamp()
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return float(value)
        return None

    # -- the database (runs in a worker thread) -----------------------------------------------
    def _connect(self) -> Engine:
        if self._engine is None:
            url = sqlite_in_folder(sa.make_url(self.url), self.context.base_dir)
            backend = url.get_backend_name()
            engine = sa.create_engine(
                url, pool_pre_ping=True, connect_args=_CONNECT_ARGS.get(backend, {})
            )
            if backend == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_query_only)
            self._engine = engine
        return self._engine

    def _fetch(self, cursor: tuple[Any, Any]) -> list[dict[str, Any]]:
        engine = self._connect()
        params = {
            "cursor": self._bind(engine, cursor[0]),
            "cursor_id": cursor[1],
            "batch": self.batch,
        }
        with engine.connect() as conn:
            backend = engine.dialect.name
            if backend == "postgresql":
                conn = conn.execution_options(postgresql_readonly=True)
            elif backend in {"mysql", "mariadb"}:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            bound = {name: params[name] for name in self._params & params.keys()}
            result = conn.execute(self._statement, bound)
            rows = [dict(row) for row in result.mappings().fetchmany(self.batch)]
            result.close()
            conn.rollback()
        for column in filter(None, (self.cursor_column, self.id_column)):
            if rows and column not in rows[0]:
                raise PollError(f"the query's rows have no column {column!r}")
        return rows

    @staticmethod
    def _bind(engine: Engine, value: Any) -> Any:
        # sqlite3's implicit datetime adapter is deprecated; SQLite keeps times as ISO text.
        if engine.dialect.name == "sqlite" and isinstance(value, dt.datetime | dt.date):
            return value.isoformat(" ") if isinstance(value, dt.datetime) else value.isoformat()
        return value


def sqlite_in_folder(url: sa.URL, base_dir: str) -> sa.URL:
    """A SQLite URL with a relative file (``sqlite:///crm.db``) resolved against the config's
    folder, as the ledger's own URL is, not against the process's working directory."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if url.query.get("uri") or database.startswith("file:") or os.path.isabs(database):
        return url
    return url.set(database=os.path.join(base_dir, database))


def _sqlite_query_only(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.execute("PRAGMA query_only = ON")
