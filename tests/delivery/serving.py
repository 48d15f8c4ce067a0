"""nextstep's own endpoints on a real uvicorn server on loopback, for the status tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from nextstep.engine.runtime.server import make_server
from tests.support.waiting import until


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) and yield its base URL."""
    server = make_server(app, "127.0.0.1", 0, graceful=1.0)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done())
        if task.done():
            task.result()
        yield f"http://{server.bound}"
    finally:
        server.should_exit = True
        await task
