"""Run the sandbox with uvicorn: in the foreground (``nextstep sandbox``) or as a task in the
caller's event loop on an already-listening socket (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from nextstep.adapters.channels.onemsg.sandbox.app import create_app
from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.state import SandboxState


def uvicorn_config(
    app: Starlette, host: str, port: int, *, log_level: str = "warning"
) -> uvicorn.Config:
    """uvicorn settings tuned for throughput: no access log, a deep backlog, our own logging."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=False,
        backlog=4096,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )


def run(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Serve until interrupted (Ctrl-C)."""
    uvicorn.Server(uvicorn_config(create_app(config), host, port, log_level="info")).run()


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening TCP socket (port 0: the system picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it; without, keep-alive answers wait ~40 ms (delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True, slots=True)
class Running:
    """A sandbox serving in this event loop."""

    base_url: str
    state: SandboxState
    server: uvicorn.Server


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Starlette, ready: asyncio.Event, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """Serve ``app`` as a task of the running loop until the block ends; yields its base URL.

    ``ready`` is an event the app's lifespan sets once started. The socket listens before
    uvicorn starts, so no request can be refused while it does.
    """
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host, bound_port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    started = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            task.result()  # startup failed: raise its error here
            raise RuntimeError("the server stopped during startup")
        yield f"http://{host}:{bound_port}", server
    finally:
        started.cancel()
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def serving(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Running]:
    """Serve the sandbox as a task of the running loop until the block ends."""
    app = create_app(config)
    state: SandboxState = app.state.sandbox
    async with serve_asgi(app, state.ready, host, port) as (base_url, server):
        try:
            yield Running(base_url, state, server)
        finally:
            # Release slow answers before uvicorn waits for open requests to finish.
            state.closing.set()
