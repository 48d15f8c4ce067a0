"""The HTTP client the HTTP channels share, and what a network failure means for a send.

Client: httpx's API over the ``httpx-aiohttp`` transport. httpx 0.28's own pool collapses
beyond ~16 concurrent requests (68 req/s at 300 in flight with 100 ms latency); aiohttp's
keeps up (see docs/sandbox.md for the figures). Timeouts are always explicit.

Failures: the question is whether the provider can have acted on the request.

* before the request was written — connect error or timeout, DNS, refused, waiting for a pooled
  connection — nothing was sent: **transient**;
* after it was written — read timeout, connection dropped or reset, a broken answer — the
  provider may have sent the message: **in doubt**.

httpx-aiohttp maps aiohttp errors to httpx ones but folds some "after" errors into
``ConnectTimeout`` (a server disconnect, for instance), so the aiohttp cause, when there is
one, decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from engine.durations import parse_duration
from engine.model import Outcome, OutcomeKind

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECTIONS = 512

_BEFORE_WRITE_AIOHTTP = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_BEFORE_WRITE_HTTPX = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)


def timeout_from(config: Mapping[str, Any]) -> httpx.Timeout:
    """``timeout:`` of a channel: one duration for all four, or ``{connect, read, write, pool}``
    (each defaulting to 10 s)."""
    value = config.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, Mapping):
        parts = {
            key: parse_duration(value.get(key, DEFAULT_TIMEOUT))
            for key in ("connect", "read", "write", "pool")
        }
        return httpx.Timeout(**parts)
    return httpx.Timeout(parse_duration(value))


def make_transport(max_connections: int = DEFAULT_CONNECTIONS) -> httpx.AsyncBaseTransport:
    """The aiohttp-backed httpx transport: one connection pool, no environment proxies."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=None)
    return AiohttpTransport(limits=limits, trust_env=False)


def make_client(
    timeout: httpx.Timeout,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = DEFAULT_CONNECTIONS,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """One long-lived client: httpx API, aiohttp transport, explicit timeouts, no env proxies."""
    return httpx.AsyncClient(
        transport=transport or make_transport(max_connections),
        timeout=timeout,
        headers=dict(headers or {}),
        trust_env=False,
    )


async def exchange(
    transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> tuple[int, httpx.Headers, bytes]:
    """Send one request straight through the transport and read the whole answer.

    The hot path: AsyncClient's per-request work (URL and header merging, cookies, auth and
    redirect handling) costs more CPU than the transport itself, and a send needs none of it.
    The request must carry its ``timeout`` extension.
    """
    response = await transport.handle_async_request(request)
    try:
        body = await response.aread()
    finally:
        await response.aclose()
    return response.status_code, response.headers, body


def transport_outcome(exc: Exception) -> Outcome:
    """Classify an exception raised while sending one request (see the module docstring)."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        before = isinstance(cause, _BEFORE_WRITE_AIOHTTP)
    else:
        before = isinstance(exc, _BEFORE_WRITE_HTTPX)
    name = type(cause if isinstance(cause, aiohttp.ClientError) else exc).__name__
    detail = str(exc) or name
    if before:
        return Outcome(OutcomeKind.TRANSIENT, f"not sent: {name}: {detail}")
    return Outcome(OutcomeKind.IN_DOUBT, f"no answer after sending: {name}: {detail}")


SEND_ERRORS = (httpx.HTTPError, aiohttp.ClientError, OSError, TimeoutError)
"""What a send may raise at the transport level; everything else is a bug."""
