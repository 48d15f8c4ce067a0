"""The ``db_poll`` trigger itself: polling, the cursor, the database side (see the package's
docstring for the block and what the query must contain)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from nextstep.adapters.triggers.config import ConfigReader, read_progress
from nextstep.adapters.triggers.db_poll.columns import select_columns
from nextstep.adapters.triggers.db_poll.settings import (
    CONFIG_SCHEMA,
    driver_problems,
    read_settings,
)
from nextstep.adapters.triggers.db_poll.values import (
    PollError,
    dump_value,
    jsonable,
    load_value,
    retry_delay,
    sqlite_in_folder,
)
from nextstep.adapters.triggers.refusals import refuse_render_errors, render_errors
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import ConfigProblem, Emit, EventFields, TriggerContext

log = logging.getLogger(__name__)

_CONNECT_ARGS = {
    "postgresql": {"connect_timeout": 10},
    "mysql": {"connect_timeout": 10, "read_timeout": 120},
    "mariadb": {"connect_timeout": 10, "read_timeout": 120},
}


class DbPollTrigger:
    """Polls one query and turns its new rows into events, in cursor order."""

    kind: ClassVar[str] = "db_poll"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA

    @staticmethod
    def shared_source(config: Mapping[str, Any]) -> str:
        """The polled source's identity for the one worker that reads it
        (``ReadsOneAtATime``): its progress key."""
        return f"db_poll:{DbPollTrigger.source_key(config)}"

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

    @staticmethod
    def check(config: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
        """What the constructor would refuse (a query without ``:cursor``, or without
        ``:cursor_id`` when ``id`` breaks ties…), and a URL whose driver is not installed."""
        settings, problems = read_settings(config)
        if problems or not settings.url:
            return problems
        return driver_problems(settings.url)

    @staticmethod
    def event_fields(config: Mapping[str, Any]) -> EventFields | None:
        """The query's columns when its text says them (``DeclaresFields``); None for
        ``SELECT *`` and expressions without an alias."""
        query, url = config.get("query"), str(config.get("url", ""))
        if not isinstance(query, str):
            return None
        names = select_columns(query, fold_case=url.startswith("postgres"))
        return None if names is None else EventFields(names, True, "the db_poll query's columns")

    def __init__(self, config: Mapping[str, Any], context: TriggerContext) -> None:
        settings, problems = read_settings(config)
        ConfigReader.raise_problems("db_poll", problems)
        self.url = settings.url
        self.query = settings.query
        self.cursor_column = settings.cursor_column
        self.id_column = settings.id_column
        self.every = settings.every
        self.delay = settings.delay
        self.batch = settings.batch
        self.timezone = settings.timezone
        self.start = settings.start
        self._statement, self._params = settings.statement, settings.params
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
        results = await emit(events, [Progress(self.progress_key, value)])
        # The cursor has moved past them: a row no rule could render is counted and said.
        failed = [(self._row_name(events[i]), reason) for i, reason in render_errors(results)]
        refuse_render_errors(log, self.source, f"db_poll {self.source}", failed)
        self._status["rows_read"] += len(rows)
        self._status["cursor"] = [dump_value(v) for v in cursor]
        return cursor

    def _row_name(self, event: Event) -> str:
        if self.id_column:
            return f"row {self.id_column}={event.trigger['id']}"
        return f"row {self.cursor_column}={event.trigger['cursor']}"

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


def _sqlite_query_only(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.execute("PRAGMA query_only = ON")
