"""A port in front of the sandbox that can be shut: connection refused, then open again.

A closed port is not something an HTTP handler can answer, so the gate is a plain TCP relay on
its own loopback port: clients point at the gate, the gate forwards every connection to the
sandbox. :meth:`Gate.close` stops listening and cuts the connections it relays (new ones are
refused by the kernel, open ones are reset), :meth:`Gate.open` listens on the same port again.
Tests use it for a provider that is down (``gated(running)``); the sandbox itself keeps its
state, so what it accepted before and after the outage stays on one record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

CHUNK = 65_536


class Gate:
    """A TCP relay from ``host:port`` to ``target`` that can refuse connections."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0  # chosen by the system on the first open, kept after
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self.refused = 0  # connections that found the sandbox itself unreachable
        # Client connections reset by close(), in all: each can cost its client at most one
        # request in doubt (the one on it, or the next one written into it before it noticed).
        self.cut = 0

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the gate."""
        return f"http://{self.host}:{self.port}"

    @property
    def is_open(self) -> bool:
        """True while the gate listens."""
        return self._server is not None

    async def open(self) -> None:
        """Listen (again, on the same port after the first time)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._relay, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and reset every relayed connection: the provider is down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.cut += len(self._clients)
        self._clients.clear()
        for writer in list(self._relays):
            writer.transport.abort()
        self._relays.clear()
        await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        self._relays.update((writer, upstream_writer))
        self._clients.add(writer)
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            self._clients.discard(writer)
            for end in (writer, upstream_writer):
                self._relays.discard(end)
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends (a reset is an end like any other)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        writer.close()


@contextlib.asynccontextmanager
async def gated(base_url: str) -> AsyncIterator[Gate]:
    """An open gate in front of the sandbox at ``base_url``, closed at the end."""
    parts = urlsplit(base_url)
    gate = Gate(parts.hostname or "127.0.0.1", parts.port or 80)
    await gate.open()
    try:
        yield gate
    finally:
        await gate.close()
