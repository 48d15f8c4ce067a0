"""The HTTP client the HTTP channels share, and what a network failure means for a send.

Client: httpx's API (``httpx.Request``/``httpx.Response``, ``httpx.AsyncClient``) over
:class:`SessionTransport`, an ``httpx.AsyncBaseTransport`` on one aiohttp ``ClientSession``.
httpx 0.28's own pool collapses beyond ~16 concurrent requests (68 req/s at 300 in flight with
100 ms latency); aiohttp's keeps up (see docs/sandbox.md for the figures). Timeouts are always
explicit. A send goes through :func:`exchange`, which on this transport skips building httpx
objects altogether (they cost as much CPU as aiohttp's own request); any other transport (a
test's ``httpx.MockTransport``) gets a plain ``httpx.Request``.

Failures: the question is whether the provider can have acted on the request.

* before the request was written — connect error or timeout, DNS, refused, waiting for a pooled
  connection, an unusable URL — nothing was sent: **transient**; when the server could not be
  reached at all (refused, DNS, TLS, connect timeout) the outcome is also ``unreachable``: the
  channel is down, its circuit opens and the notification keeps its attempts;
* after it was written — read timeout, connection dropped or reset, a broken answer — the
  provider may have sent the message: **in doubt**.

The transport raises httpx's exceptions with the aiohttp error as their cause; the cause, when
there is one, decides.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple

import aiohttp
import httpx
from yarl import URL

from nextstep.engine.durations import parse_duration
from nextstep.engine.model import Outcome, OutcomeKind

DEFAULT_TIMEOUT = 10.0
# As many as the dispatcher's default ``max_in_flight`` ceiling: a smaller pool would queue
# requests inside the client, which the lane would measure as provider latency.
DEFAULT_CONNECTIONS = 4000
# Idle connections close after this many seconds: under common servers' keep-alive timeouts
# (uvicorn's is 5 s), so a send rarely meets a connection the server is just closing.
KEEPALIVE = 4.0

_BEFORE_WRITE_AIOHTTP = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)
_BEFORE_WRITE_HTTPX = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)
# Before-write failures that say the server cannot be reached (not a full pool, not a bad URL).
_UNREACHABLE = (
    aiohttp.ClientConnectorError,  # refused, DNS, TLS (its certificate and SSL subclasses)
    aiohttp.ConnectionTimeoutError,
    httpx.ConnectError,
    httpx.ConnectTimeout,
)
# aiohttp error → the httpx exception raised for it; the first match wins (subclasses first).
_HTTPX_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientError, httpx.ReadError),
    (TimeoutError, httpx.ReadTimeout),
    (OSError, httpx.ReadError),
)


class Answer(NamedTuple):
    """One HTTP answer, read whole: status, headers (case-insensitive), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


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


def client_timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for httpx's ``{connect, read, write, pool}``: aiohttp's ``connect``
    covers waiting for a pooled connection, ``sock_connect`` the TCP connect alone."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=timeout.get("pool"),
        sock_connect=timeout.get("connect"),
        sock_read=timeout.get("read"),
    )


def as_httpx_error(exc: BaseException) -> httpx.TransportError:
    """The httpx exception standing for an aiohttp (or socket) error."""
    mapped = next((to for source, to in _HTTPX_ERRORS if isinstance(exc, source)), None)
    return (mapped or httpx.TransportError)(str(exc) or type(exc).__name__)


class SessionTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp ``ClientSession`` (its connection pool, keep-alive,
    no cookies, no redirects, no environment proxies); the session opens on first use, inside
    the running event loop."""

    def __init__(self, max_connections: int = DEFAULT_CONNECTIONS) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        # No TLS context here: each https request names it (:func:`https_context`), so a
        # channel on plain http (a sandbox, a local gateway) never loads a certificate bundle.
        connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=KEEPALIVE)
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=client_timeout({}),
            trust_env=False,
        )
        return self._session

    def timeout(self, timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        """The ``aiohttp.ClientTimeout`` for httpx's timeout dict (built once per value)."""
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = client_timeout(timeout)
        return found

    async def fetch(
        self,
        method: str,
        url: str | URL,
        body: bytes | None,
        headers: Mapping[str, str] | list[tuple[str, str]],
        timeout: aiohttp.ClientTimeout,
        *,
        decompress: bool = True,
    ) -> Answer:
        """One request, the answer read whole; raises httpx's exceptions (aiohttp's as cause)."""
        session = self._session or self._open()
        secure = url.startswith("https:") if isinstance(url, str) else url.scheme == "https"
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                auto_decompress=decompress,
                ssl=https_context() if secure else True,
            ) as response:
                return Answer(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise as_httpx_error(exc) from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """httpx's entry point: the body is read, sent, and the answer read whole. The answer
        stays encoded (httpx decodes it, as it would any transport's)."""
        content = await request.aread()
        headers = [(k, v) for k, v in request.headers.multi_items() if k != "transfer-encoding"]
        answer = await self.fetch(
            request.method,
            URL(str(request.url), encoded=True),
            content or None,
            headers,
            self.timeout(request.extensions.get("timeout", {})),
            decompress=False,
        )
        return httpx.Response(
            answer.status,
            headers=list(answer.headers.items()),
            content=answer.body,
            request=request,
        )

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


@functools.cache
def https_context() -> ssl.SSLContext:
    """The TLS context of every https request, made once: certifi's roots (httpx's bundle), so
    HTTPS trusts the same roots whichever transport sends."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def make_transport(max_connections: int = DEFAULT_CONNECTIONS) -> SessionTransport:
    """The aiohttp-backed httpx transport: one connection pool, no environment proxies."""
    return SessionTransport(max_connections)


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
    transport: httpx.AsyncBaseTransport,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: Mapping[str, float | None],
) -> Answer:
    """Send one request straight through ``transport`` and read the whole answer.

    The hot path: AsyncClient's per-request work (URL and header merging, cookies, auth and
    redirect handling) costs more CPU than the transport itself, and a send needs none of it;
    on a :class:`SessionTransport` no httpx object is built at all.
    """
    if isinstance(transport, SessionTransport):
        return await transport.fetch(method, url, body, headers, transport.timeout(timeout))
    request = httpx.Request(
        method, url, content=body, headers=headers, extensions={"timeout": timeout}
    )
    response = await transport.handle_async_request(request)
    try:
        content = await response.aread()
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, content)


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
        down = isinstance(cause if isinstance(cause, aiohttp.ClientError) else exc, _UNREACHABLE)
        return Outcome(OutcomeKind.TRANSIENT, f"not sent: {name}: {detail}", unreachable=down)
    return Outcome(OutcomeKind.IN_DOUBT, f"no answer after sending: {name}: {detail}")


SEND_ERRORS = (httpx.HTTPError, aiohttp.ClientError, OSError, TimeoutError)
"""What a send may raise at the transport level; everything else is a bug."""
