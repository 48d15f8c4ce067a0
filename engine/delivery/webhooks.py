"""``POST /webhooks/1msg/<secret>``: where 1MSG posts delivery acks (and inbound messages).

The handler only parses the body and hands its acks to one batched ledger write, then answers
``200 {"ok": true, …}``: 1MSG may retry a non-2xx answer, and a 2xx is only given once the
acks are safely in the ledger. Calls that arrive while a write is under way are written
together in the next transaction (:class:`AckSink`), so many concurrent calls cost one commit.
The secret in the path is compared in constant time; a wrong one answers 404, as for any
unknown path, and records nothing. Inbound ``messages[]`` are counted and not stored:
nextstep only sends.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.clock import Clock
from nextstep.engine.delivery.acks import Ack, AckReport, parse_payload, record_ack_batches
from nextstep.engine.delivery.fallbacks import PolicyContext
from nextstep.engine.errors import NextstepError, StoreError
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.ledger.sqlite import SqliteStore

log = logging.getLogger(__name__)

PATH = "/webhooks/1msg/{secret}"
MAX_BODY = 8 * 1_048_576  # a batch of a few thousand acks is well under 1 MiB


def _not_found() -> Response:
    return JSONResponse({"error": "not found"}, status_code=404)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class AckSink:
    """Group commit for webhook calls: :meth:`record` waits for the transaction that holds its
    acks; one writer drains whatever calls are waiting into each transaction."""

    def __init__(
        self,
        runner: LedgerRunner,
        store: SqliteStore,
        clock: Clock,
        context: PolicyContext | Callable[[], PolicyContext],
    ) -> None:
        self._runner, self._store, self._clock, self._context = runner, store, clock, context
        self._waiting: list[tuple[list[Ack], asyncio.Future[AckReport]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, acks: list[Ack]) -> AckReport:
        """Write ``acks`` (with whatever other calls are waiting); raises StoreError."""
        future: asyncio.Future[AckReport] = asyncio.get_running_loop().create_future()
        self._waiting.append((acks, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            ctx = self._context() if callable(self._context) else self._context
            try:
                reports = await self._runner.call(
                    record_ack_batches, self._store, [a for a, _ in taken], self._clock.now(), ctx
                )
            except Exception as exc:  # noqa: BLE001 - every waiting call gets the failure
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), report in zip(taken, reports, strict=True):
                if not future.done():
                    future.set_result(report)


def webhook_routes(
    runner: LedgerRunner,
    secret: str,
    *,
    clock: Clock,
    context: PolicyContext | Callable[[], PolicyContext],
    max_body: int = MAX_BODY,
) -> list[BaseRoute]:
    """The route the daemon mounts. ``context`` may be a callable, read per request, so a
    reload's new rules apply at once."""
    if not secret:
        raise NextstepError("server.webhook_secret is empty: set it to receive 1MSG acks")
    store = runner.store
    if not isinstance(store, SqliteStore):
        raise NextstepError("the 1MSG webhook needs the SQLite ledger")
    expected = secret.encode()
    sink = AckSink(runner, store, clock, context)

    async def receive(request: Request) -> Response:
        given = str(request.path_params.get("secret", "")).encode()
        if not hmac.compare_digest(given, expected):
            return _not_found()
        body = await _read_body(request, max_body)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            payload = parse_payload(orjson.loads(body))
        except orjson.JSONDecodeError:
            payload = None
        if payload is None:
            return JSONResponse({"error": "expected a 1MSG JSON object"}, status_code=400)
        try:
            report = await sink.record(payload.acks)
        except StoreError as exc:
            log.error("1MSG webhook: acks not recorded: %s", exc)
            return JSONResponse({"error": "ledger unavailable, try again"}, status_code=503)
        if payload.rejected:
            log.warning("1MSG webhook: %d acks without an id or a status ignored", payload.rejected)
        return JSONResponse(
            {
                "ok": True,
                "acks": len(payload.acks),
                "matched": report.matched,
                "kept": report.kept,
                "messages": payload.messages,
            }
        )

    return [Route(PATH, receive, methods=["POST"])]
