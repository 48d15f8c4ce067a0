"""Real servers on loopback for the status tests: uvicorn for an ASGI app, and a tiny HTTP
receiver that records what is posted to it (the CRM of a webhook fallback)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from engine.server import make_server


@contextlib.asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) and yield its base URL."""
    server = make_server(app, "127.0.0.1", 0, graceful=1.0)  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done())
        if task.done():
            task.result()
        yield f"http://{server.bound}"
    finally:
        server.should_exit = True
        await task


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, checked every few milliseconds, or fail."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class Receiver:
    """An HTTP endpoint that keeps every JSON body posted to ``/crm``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[Any] = []
        self.app = Starlette(routes=[Route("/crm", self._post, methods=["POST"])])

    async def _post(self, request: Request) -> Response:
        self.bodies.append(orjson.loads(await request.body()))
        return JSONResponse({"ok": self.status < 300}, status_code=self.status)
