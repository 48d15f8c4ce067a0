"""The shared HTTP transport on loopback: httpx's API over one aiohttp session, the send path
that skips httpx objects, and what each network failure means for a send."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import httpx
import pytest

from nextstep.adapters.channels.http_client import (
    SessionTransport,
    as_httpx_error,
    exchange,
    make_client,
    make_transport,
    transport_outcome,
)
from nextstep.engine.model import OutcomeKind

TIMEOUT = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def answering(status: int, body: bytes, *headers: str, seen: list[bytes] | None = None) -> Handler:
    """A keep-alive handler giving every request the same answer (and noting the bodies)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                _, content = await _read_request(reader)
                if seen is not None:
                    seen.append(content)
                lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *headers]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
                await writer.drain()

    return handle


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await reader.read()  # never answers; returns when the client gives up


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on a free port; at the end, wait for every connection to close."""
    handlers: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
        if handlers:
            await asyncio.wait(handlers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_async_client_gets_decoded_answers_and_every_header() -> None:
    body = gzip.compress(b'{"ok": true}')
    handler = answering(200, body, "Content-Encoding: gzip", "Set-Cookie: a=1", "Set-Cookie: b=2")
    seen: list[bytes] = []
    async with serving(answering(201, b"{}", seen=seen)) as post_url, serving(handler) as url:
        client = make_client(httpx.Timeout(2.0))
        try:
            got = await client.get(f"{url}/status")
            posted = await client.post(f"{post_url}/hook", json={"case": 7})
        finally:
            await client.aclose()
    assert got.status_code == 200 and got.json() == {"ok": True}
    assert got.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert posted.status_code == 201 and seen == [b'{"case":7}']


async def test_exchange_reuses_connections_and_decodes() -> None:
    handler = answering(200, gzip.compress(b'{"sent": true}'), "Content-Encoding: gzip")
    transport = make_transport(max_connections=4)
    async with serving(handler) as url:
        try:
            answers = [
                await exchange(transport, "POST", f"{url}/x", b"{}", {}, TIMEOUT) for _ in range(3)
            ]
        finally:
            await transport.aclose()
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].body == b'{"sent": true}'
    assert answers[0].headers["content-encoding"] == "gzip"  # case-insensitive headers


async def test_exchange_on_another_transport_builds_an_httpx_request() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429, headers={"Retry-After": "3"}, content=b"slow down")

    headers = {"Authorization": "Bearer t"}
    answer = await exchange(
        httpx.MockTransport(record), "POST", "http://api.test/i/send", b"{}", headers, TIMEOUT
    )
    assert (answer.status, answer.headers["retry-after"], answer.body) == (429, "3", b"slow down")
    assert seen[0].extensions["timeout"] == TIMEOUT
    assert seen[0].headers["authorization"] == "Bearer t" and seen[0].content == b"{}"


async def test_refused_is_a_connect_error_and_transient() -> None:
    transport = SessionTransport()
    try:
        with pytest.raises(httpx.ConnectError) as caught:
            await exchange(transport, "POST", f"http://127.0.0.1:{free_port()}/", b"", {}, TIMEOUT)
    finally:
        await transport.aclose()
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    outcome = transport_outcome(caught.value)
    # Nothing was sent, and the channel is down: its circuit opens (issue 15.9).
    assert (outcome.kind, outcome.unreachable) == (OutcomeKind.TRANSIENT, True)


async def _plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1024)  # a TLS hello; the answer is plain text, not a handshake
    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")


@pytest.mark.parametrize("failure", ["tls", "dns"])
async def test_tls_and_dns_failures_are_the_channel_unreachable(failure: str) -> None:
    transport = SessionTransport()
    try:
        async with serving(_plain_http) as url:
            target = url.replace("http://", "https://") if failure == "tls" else url
            if failure == "dns":  # .invalid never resolves (RFC 2606)
                target = "http://nextstep-test.invalid"
            with pytest.raises(httpx.ConnectError) as caught:
                await exchange(transport, "POST", f"{target}/x", b"{}", {}, TIMEOUT)
    finally:
        await transport.aclose()
    outcome = transport_outcome(caught.value)
    assert (outcome.kind, outcome.unreachable) == (OutcomeKind.TRANSIENT, True)


async def test_no_answer_is_a_read_timeout_and_in_doubt() -> None:
    transport = SessionTransport()
    timeout = {**TIMEOUT, "read": 0.2}
    async with serving(_silent) as url:
        try:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await exchange(transport, "POST", f"{url}/x", b"{}", {}, timeout)
        finally:
            await transport.aclose()
    outcome = transport_outcome(caught.value)
    assert (outcome.kind, outcome.unreachable) == (OutcomeKind.IN_DOUBT, False)


def test_aiohttp_errors_map_to_httpx_ones() -> None:
    assert isinstance(as_httpx_error(aiohttp.ConnectionTimeoutError()), httpx.ConnectTimeout)
    assert isinstance(as_httpx_error(aiohttp.ServerDisconnectedError()), httpx.RemoteProtocolError)
    assert isinstance(as_httpx_error(aiohttp.ClientPayloadError()), httpx.ReadError)
    assert isinstance(as_httpx_error(ConnectionResetError()), httpx.ReadError)
    unusable = as_httpx_error(aiohttp.InvalidURL("x"))
    unusable.__cause__ = aiohttp.InvalidURL("x")
    assert transport_outcome(unusable).kind is OutcomeKind.TRANSIENT


def test_https_requests_verify_against_one_context_made_on_first_use() -> None:
    from nextstep.adapters.channels.http_client import https_context

    context = https_context()
    assert context is https_context()  # one per process, not one per channel or request
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
