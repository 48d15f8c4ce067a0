"""Real HTTP on loopback for tests: the 1MSG sandbox, and a webhook receiver.

Both run with uvicorn as tasks of the test's event loop, on a free port of 127.0.0.1::

    async with running_sandbox(ack_delay=0.01) as sandbox:
        channel = OneMsgChannel("wa", sandbox.channel_config(), clock=clock)
        ...
        await sandbox.wait_acks(3)          # no sleeping: wakes when 3 acks were posted

    async with running_receiver() as receiver:
        ...                                 # receiver.url gets POSTs
        await receiver.wait_for(2)          # two bodies received
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.server import serve_asgi, serving
from nextstep.adapters.channels.onemsg.sandbox.state import Received, SandboxState


@dataclass
class SandboxHandle:
    """A running sandbox: its URL, its configuration and its live state."""

    base_url: str
    config: SandboxConfig
    state: SandboxState

    @property
    def token(self) -> str:
        """The token the sandbox accepts."""
        return self.config.token

    def channel_config(self, instance: str = "test-instance", **extra: Any) -> dict[str, Any]:
        """A ``type: 1msg`` channel config pointing at this sandbox."""
        return {
            "base_url": self.base_url,
            "instance_id": instance,
            "token": self.config.token,
            **extra,
        }

    def url(self, instance: str, method: str) -> str:
        """``{base_url}/{instance}/{method}``."""
        return f"{self.base_url}/{instance}/{method}"

    @property
    def requests(self) -> list[Received]:
        """Every API request received so far (tokens removed)."""
        return list(self.state.requests)

    def sends(self) -> list[Received]:
        """The ``sendTemplate`` requests received so far."""
        return [r for r in self.state.requests if r.path.endswith("/sendTemplate")]

    async def wait_acks(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` acks in total were posted to webhooks that answered 2xx."""
        await self.state.wait_acks(count, timeout)

    def posted_acks(self) -> list[dict[str, Any]]:
        """Every ack item posted so far, in order."""
        return self.state.posted_acks()


@contextlib.asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None, **changes: Any
) -> AsyncIterator[SandboxHandle]:
    """Start the sandbox (``config`` with ``changes`` applied) and yield a handle."""
    effective = replace(config or SandboxConfig(), **changes)
    async with serving(effective) as running:
        yield SandboxHandle(running.base_url, effective, running.state)


@dataclass
class Receiver:
    """A webhook endpoint that records every JSON body posted to it."""

    url: str = ""
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give first, then 200
    delay: float = 0.0  # seconds to wait before answering (to provoke read timeouts)
    _waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def acks(self) -> list[dict[str, Any]]:
        """Every ack item of every 1MSG payload received."""
        return [
            item for body in self.bodies if isinstance(body, dict) for item in body.get("ack", [])
        ]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` bodies were received."""
        if len(self.bodies) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        await asyncio.wait_for(future, timeout)

    async def _handle(self, request: Request) -> Response:
        if request.method == "GET":  # a health check: answered, not recorded
            return Response(b"ok")
        raw = await request.body()
        self.headers.append(dict(request.headers))
        try:
            self.bodies.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            self.bodies.append(raw.decode("utf-8", "replace"))
        for wanted, future in self._waiters:
            if wanted <= len(self.bodies) and not future.done():
                future.set_result(None)
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(b'{"ok": true}', status_code=status, media_type="application/json")


@contextlib.asynccontextmanager
async def running_receiver(
    statuses: list[int] | None = None, delay: float = 0.0, path: str = "/hook"
) -> AsyncIterator[Receiver]:
    """Start a webhook receiver; ``statuses`` are answered first (then 200)."""
    receiver = Receiver(statuses=list(statuses or []), delay=delay)
    ready = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ready.set()
        yield

    app = Starlette(
        routes=[Route(path, receiver._handle, methods=["GET", "POST", "PUT"])], lifespan=lifespan
    )
    async with serve_asgi(app, ready) as (base_url, _server):
        receiver.url = base_url + path
        yield receiver
