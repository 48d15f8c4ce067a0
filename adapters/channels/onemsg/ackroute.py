"""``POST /webhooks/1msg/<secret>``: where 1MSG posts delivery acks (and inbound messages).

The handler only parses the body and hands its acks to the engine's recorder (one batched
ledger write), then answers ``200 {"ok": true, …}``: 1MSG may retry a non-2xx answer, and a 2xx
is only given once the acks are safely in the ledger. The secret in the path is compared in
constant time; a wrong one answers 404, as for any unknown path, and records nothing. Inbound
``messages[]`` are counted and not stored: nextstep only sends.

Any JSON object is answered 2xx (or 503 when the ledger cannot take its acks): a malformed
part (an ``entry`` that is not a list, an ack without an id…) is ignored, counted in the answer
(``ignored``) and in ``nextstep_webhook_ignored_total``, and the rest is taken, since 1MSG
would only post the same body again. 400 is kept for a body that is not a JSON object (not
JSON as orjson reads it: invalid UTF-8, a lone surrogate, nesting deeper than 1024), 413 for
one over ``max_body``.
"""

from __future__ import annotations

import hmac
import logging

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.adapters.channels.onemsg.acks import PARTS, parse_payload
from nextstep.engine.errors import NextstepError, StoreError
from nextstep.engine.metrics import WEBHOOK_IGNORED
from nextstep.engine.plugins import AckRecorder

log = logging.getLogger(__name__)

PATH = "/webhooks/1msg/{secret}"
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which orjson refuses: skipped
_IGNORED = {part: WEBHOOK_IGNORED.labels("1msg", part) for part in PARTS}


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
            payload = parse_payload(orjson.loads(body.removeprefix(_BOM)))
        except orjson.JSONDecodeError:
            payload = None
        if payload is None:
            return JSONResponse({"error": "expected a 1MSG JSON object"}, status_code=400)
        try:
            report = await recorder.record(payload.acks)
        except StoreError as exc:
            log.error("1MSG webhook: acks not recorded: %s", exc)
            return JSONResponse({"error": "ledger unavailable, try again"}, status_code=503)
        if payload.ignored:
            for part, count in payload.ignored.items():
                _IGNORED[part].inc(count)
            shown = ", ".join(f"{count} {part}" for part, count in sorted(payload.ignored.items()))
            log.warning("1MSG webhook: malformed parts ignored: %s", shown)
        return JSONResponse(
            {
                "ok": True,
                "acks": len(payload.acks),
                "matched": report.matched,
                "kept": report.kept,
                "messages": payload.messages,
                "ignored": payload.ignored_total,
            }
        )

    return [Route(PATH, receive, methods=["POST"])]
