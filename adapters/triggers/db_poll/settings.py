"""The ``db_poll:`` block of a rule: its JSON Schema, its reading into :class:`PollSettings`
(shared by the constructor and ``check``), and the deeper check of the URL's driver."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from nextstep.adapters.triggers.config import ConfigReader
from nextstep.adapters.triggers.db_poll.values import EPOCH
from nextstep.engine.plugins import ConfigProblem

DISTRIBUTION = "nextstep-whatsapp"  # the distribution whose extras bring the drivers
# backend -> (the extra that installs its driver, the driver's name in a URL)
DRIVERS = {"postgresql": ("postgres", "psycopg"), "mysql": ("mysql", "pymysql")}
DRIVERS["mariadb"] = DRIVERS["mysql"]
_READ_ONLY_START = re.compile(r"^\s*(\(\s*)*(select|with)\b", re.IGNORECASE)

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "Rows polled from a database with a moving cursor.",
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "query", "cursor"],
    "properties": {
        "url": {
            "type": "string",
            "minLength": 1,
            "description": "SQLAlchemy URL: sqlite:///…, postgresql://…, mysql+pymysql://…",
        },
        "query": {
            "type": "string",
            "pattern": ":cursor\\b",
            "x-messages": {
                "pattern": "{value} must use the bound parameter :cursor (… WHERE updated_at > "
                ":cursor ORDER BY updated_at, id)"
            },
        },
        "cursor": {
            "type": "string",
            "minLength": 1,
            "description": "Column the query is ordered by.",
        },
        "id": {
            "type": "string",
            "minLength": 1,
            "description": "Tie-break column for rows with the same cursor value.",
        },
        "every": {"$ref": "#/$defs/duration"},
        "delay": {"$ref": "#/$defs/duration"},
        "batch": {"type": "integer", "minimum": 1},
        "start": {
            "type": ["string", "number"],
            "description": "now (default), beginning, an ISO time or a number: where the "
            "cursor starts.",
        },
        "timezone": {
            "type": "string",
            "description": "Zone of naive timestamps in the cursor column (UTC).",
        },
        "name": {
            "type": "string",
            "description": "Names the source, so rules with different queries can share it.",
        },
    },
}


@dataclass(frozen=True, slots=True)
class PollSettings:
    """The ``db_poll:`` block, checked and converted."""

    url: str
    query: str
    cursor_column: str
    id_column: str | None
    every: float
    delay: float
    batch: int
    timezone: ZoneInfo
    start: Any  # "now", or the first cursor value
    statement: sa.TextClause
    params: frozenset[str]  # the bound parameters the query uses


def read_settings(config: Mapping[str, Any]) -> tuple[PollSettings, list[ConfigProblem]]:
    """The ``db_poll:`` block read, and every problem found in it."""
    read = ConfigReader("db_poll", config, tuple(CONFIG_SCHEMA["properties"]))
    url = read.text("url", required=True)
    query = read.text("query", required=True)
    cursor_column = read.text("cursor", required=True)
    id_column = read.text("id") or None
    every = read.duration("every", 10.0)
    delay = read.duration("delay", 0.0)
    batch = read.positive_int("batch", 500)
    timezone = _zone(read, read.text("timezone", "UTC"))
    start = _start(read, config.get("start", "now"))
    statement, params = _query(read, query, id_column)
    if url:
        try:
            sa.make_url(url)
        except ArgumentError as exc:
            read.fail("url", f"is not a SQLAlchemy URL: {exc}")
    settings = PollSettings(
        url,
        query,
        cursor_column,
        id_column,
        every,
        delay,
        batch,
        timezone,
        start,
        statement,
        params,
    )
    return settings, read.problems


def _zone(read: ConfigReader, name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        read.fail("timezone", f"{name!r} is not a time zone (e.g. UTC, Europe/Madrid)")
        return ZoneInfo("UTC")


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


def _query(
    read: ConfigReader, query: str, id_column: str | None
) -> tuple[sa.TextClause, frozenset[str]]:
    """The query as a statement and its bound parameters: ``:cursor``, and ``:cursor_id`` when
    an ``id`` column breaks ties, must be among them."""
    statement = sa.text(query)
    params = frozenset(statement.compile().params)
    needed = {"cursor"} | ({"cursor_id"} if id_column else set())
    for name in sorted(needed - params):
        read.fail("query", f"must use the bound parameter :{name}")
    if query and not _READ_ONLY_START.match(query):
        read.fail("query", "must be a SELECT (or WITH … SELECT); the trigger only reads")
    return statement, params


def driver_problems(url: str) -> list[ConfigProblem]:
    """A URL whose database driver is not installed: which one, and the extra that brings it."""
    try:
        parsed = sa.make_url(url)
        dialect = parsed.get_dialect()
    except ArgumentError:
        return []  # read_settings has said why
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = exc.name or str(exc)
        backend = parsed.get_backend_name()
        if backend not in DRIVERS:
            return [(("url",), f"needs the database driver {module}, which is not installed")]
        extra, driver = DRIVERS[backend]
        install = f"pip install '{DISTRIBUTION}[{extra}]'"
        if parsed.get_driver_name() == driver:
            return [(("url",), f"needs {module}, which is not installed: {install}")]
        return [
            (
                ("url",),
                f"needs {module}, which is not installed: write the URL as {backend}+{driver}://"
                f"… and {install}",
            )
        ]
    return []
