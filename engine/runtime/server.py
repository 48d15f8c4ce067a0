"""The daemon's HTTP side: one Starlette app with ``/healthz``, ``/metrics`` and the routes the
plug-ins contribute (triggers' event paths, channels' ack webhooks), served by uvicorn inside
the daemon's task group.

``/healthz`` answers JSON ``{"status": "ok" | "degraded", "triggers": […], "circuits": {…},
"reload": {…}}`` (HTTP 200 while the process serves, 503 while it shuts down). The same document
is what the daemon writes to the ledger for ``nextstep status`` (see :func:`health_document`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep import __version__
from nextstep.engine.clock import Clock
from nextstep.engine.errors import NextstepError
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import QUEUE_DEPTH, REGISTRY
from nextstep.engine.model import Progress
from nextstep.engine.plugins import RegistersAcks
from nextstep.engine.redact import redact_tree

log = logging.getLogger(__name__)

HealthSource = Callable[[], Mapping[str, Any]]
HEALTH_KEY = "daemon:health"  # progress-table key of the snapshot the daemon keeps fresh
HEALTH_EVERY = 2.0  # seconds between snapshots
HEALTH_STALE_AFTER = 10.0  # an older snapshot means the daemon is not running


def health_document(
    *,
    triggers: Iterable[Mapping[str, Any]],
    circuits: Mapping[str, Any],
    reload: Mapping[str, Any],
    now: float,
    started_at: float,
    listen: str = "",
    stopping: bool = False,
    worker: str = "",
    workers: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The health JSON: degraded when a trigger is waiting to restart or reports an error, or
    a channel's circuit is open."""
    trigger_list = [dict(t) for t in triggers]
    open_circuits = [name for name, c in circuits.items() if _circuit_open(c)]
    # A trigger may be up yet failing inside (a database it retries): its own status says so.
    failing = [
        t["name"]
        for t in trigger_list
        if t.get("state") != "running" or (t.get("detail") or {}).get("state") == "error"
    ]
    status = "stopping" if stopping else ("degraded" if failing or open_circuits else "ok")
    # States, never provider texts: every string passes the logs' redaction (issue 15.2).
    return {
        "status": status,
        "version": __version__,
        "pid": os.getpid(),
        "listen": listen,
        "started_at": started_at,
        "updated_at": now,
        "worker": worker,  # this worker's id
        "workers": [dict(w) for w in workers],  # every worker of the ledger seen lately
        "triggers": redact_tree(trigger_list),
        "circuits": redact_tree(dict(circuits)),
        "reload": redact_tree(dict(reload)),
    }


def _circuit_open(circuit: Any) -> bool:
    if isinstance(circuit, Mapping):
        return str(circuit.get("state", "closed")) != "closed"
    return str(circuit) != "closed"


def create_app(health: HealthSource, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The app: ``routes`` (events, webhooks) plus ``/healthz`` and ``/metrics``."""

    async def healthz(request: Request) -> Response:
        doc = health()
        return JSONResponse(doc, status_code=503 if doc.get("status") == "stopping" else 200)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *routes,
        ]
    )


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT and stops the
    server by setting ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Leave SIGTERM/SIGINT to the daemon."""
        yield

    @property
    def bound(self) -> str:
        """``host:port`` actually listened on (the port is chosen by the OS for port 0)."""
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                return f"{host}:{port}"
        return ""


def make_server(app: Starlette, host: str, port: int, *, graceful: int = 5) -> Server:
    """A uvicorn server for ``app`` on ``host:port`` with the daemon's logging left alone."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=graceful,
        # Longer than clients' idle pools (a server closing first races the next request);
        # shutdown closes idle connections at once, so this does not delay stopping.
        timeout_keep_alive=30,
        backlog=2048,
    )
    return Server(config)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening socket (port 0: the system picks one); NextstepError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it; without, keep-alive answers wait ~40 ms (Nagle
        # on the answer's second write meets the client's delayed ACK).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise NextstepError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; change server.listen"
        ) from exc
    sock.setblocking(False)
    return sock


async def write_snapshot(runner: LedgerRunner, now: float, doc: dict[str, Any]) -> None:
    """Put the health document (with the queue depth) where ``nextstep status`` reads it."""
    store = runner.store
    depth = await runner.call(store.queue_depth, now)
    QUEUE_DEPTH.set(depth)
    doc["queue_depth"] = depth
    await runner.call(store.enqueue, [], [Progress(HEALTH_KEY, json.dumps(doc, default=str))])


async def keep_snapshot(
    runner: LedgerRunner, clock: Clock, health: HealthSource, every: float = HEALTH_EVERY
) -> None:
    """Refresh the snapshot every ``every`` seconds until cancelled."""
    while True:
        try:
            await write_snapshot(runner, clock.now(), dict(health()))
        except NextstepError as exc:
            log.warning("health snapshot not written: %s", exc)
        await clock.sleep(every)


async def register_acks(
    channels: Mapping[str, object], public_url: str | None, listen: str, secret: str | None
) -> None:
    """Register the ack webhook with every channel that can (``RegistersAcks``); failures are
    logged, statuses then come from status lookups."""
    for name, channel in channels.items():
        if not secret or not isinstance(channel, RegistersAcks):
            continue
        try:
            done = await channel.register_acks(public_url, listen, secret)
        except NextstepError as exc:
            log.error("channel %s: ack webhook not registered: %s", name, exc)
            continue
        if not done.registered:
            log.info("channel %s: %s", name, done.detail)
