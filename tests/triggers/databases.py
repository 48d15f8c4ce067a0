"""A throwaway table in SQLite, the real PostgreSQL or the real MariaDB, and a TCP proxy that
a test can stop and start to make a database unreachable without touching the shared server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

_COLUMNS = {
    "sqlite": "id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL, first_name TEXT, phone TEXT",
    "postgresql": "id INTEGER PRIMARY KEY, updated_at TIMESTAMP(6) NOT NULL, "
    "first_name TEXT, phone TEXT",
    "mysql": "id INTEGER PRIMARY KEY, updated_at DATETIME(6) NOT NULL, "
    "first_name VARCHAR(100), phone VARCHAR(100)",
}


class Table:
    """``poll_<random>`` with (id, updated_at, first_name, phone); dropped by :meth:`drop`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"poll_{uuid.uuid4().hex[:10]}"
        self.engine = sa.create_engine(url)
        self.backend = self.engine.dialect.name
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {self.name} ({_COLUMNS[self.backend]})")

    def insert(self, *rows: tuple[int, dt.datetime, str, str]) -> None:
        """Insert rows of (id, updated_at, first_name, phone), committed."""
        statement = sa.text(
            f"INSERT INTO {self.name} (id, updated_at, first_name, phone) "
            "VALUES (:id, :at, :name, :phone)"
        )
        with self.engine.begin() as conn:
            for id_, at, name, phone in rows:
                when: Any = at.isoformat(" ") if self.backend == "sqlite" else at
                conn.execute(statement, {"id": id_, "at": when, "name": name, "phone": phone})

    def query(self) -> str:
        """The portable poll query over this table."""
        return (
            f"SELECT id, updated_at, first_name, phone FROM {self.name} "
            "WHERE updated_at > :cursor OR (updated_at = :cursor AND id > :cursor_id) "
            "ORDER BY updated_at, id LIMIT :batch"
        )

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {self.name}").scalar_one())

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.name}")
        self.engine.dispose()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to a database; :meth:`stop` cuts every connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every open connection, like a database going away."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()
