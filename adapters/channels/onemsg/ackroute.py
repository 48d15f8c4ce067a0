"""``POST /webhooks/1msg/<secret>``: where 1MSG posts delivery acks (and inbound messages).

The handler only parses the body and hands its acks to the engine's recorder (one batched
ledger write), then answers ``200 {"ok": true, …}``: 1MSG may retry a non-2xx answer, and a 2xx
is only given once the acks are safely in the ledger. The secret in the path is compared in
constant time; a wrong one answers 404, as for any unknown path, and records nothing. Inbound
``messages[]`` are counted and not stored: nextstep only sends.
"""

from __future__ import annotations

import hmac
import logging

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.adapters.channels.onemsg.acks import parse_payload
from nextstep.engine.errors import NextstepError, StoreError
from nextstep.engine.plugins import AckRecorder

log = logging.getLogger(__name__)

PATH = "/webhooks/1msg/{secret}"


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


def ack_routes(recorder: AckRecorder, secret: str, max_body: int) -> list[BaseRoute]:
    """The route the daemon mounts for 1MSG channels (``server.webhook_secret`` in the path,
    bodies up to ``max_body`` bytes)."""
    if not secret:
        raise NextstepError("server.webhook_secret is empty: set it to receive 1MSG acks")
    expected = secret.encode()

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
            report = await recorder.record(payload.acks)
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
