"""WebhookChannel against a real receiver on loopback."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from nextstep.adapters.channels.webhook import WebhookChannel, classify_webhook
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError
from nextstep.engine.model import Message, OutcomeKind
from tests.support.sandbox import running_receiver

NOW = 1_780_000_000.0


def message(body: Any = None) -> Message:
    return Message(
        "crm",
        "34600111222",
        {"body": body if body is not None else {"case": "12345", "reason": "undeliverable"}},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_posts_the_body_with_the_configured_headers(clock: FakeClock) -> None:
    async with running_receiver() as receiver:
        config = {"url": receiver.url, "headers": {"Authorization": "Bearer crm-token"}}
        channel = WebhookChannel("crm", config, clock=clock)
        try:
            outcome = await channel.send(message())
        finally:
            await channel.aclose()
    assert outcome.kind is OutcomeKind.ACCEPTED
    assert receiver.bodies == [{"case": "12345", "reason": "undeliverable"}]
    assert receiver.headers[0]["authorization"] == "Bearer crm-token"
    assert receiver.headers[0]["content-type"] == "application/json"
    assert WebhookChannel.preview(message(), {}).body == {
        "case": "12345",
        "reason": "undeliverable",
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        pytest.param(500, OutcomeKind.TRANSIENT, id="500"),
        pytest.param(503, OutcomeKind.TRANSIENT, id="503"),
        pytest.param(429, OutcomeKind.TRANSIENT, id="429"),
        pytest.param(408, OutcomeKind.TRANSIENT, id="408"),
        pytest.param(400, OutcomeKind.RECIPIENT, id="400"),
        pytest.param(404, OutcomeKind.RECIPIENT, id="404"),
        pytest.param(422, OutcomeKind.RECIPIENT, id="422"),
        pytest.param(401, OutcomeKind.ACCOUNT, id="401"),
        pytest.param(403, OutcomeKind.ACCOUNT, id="403"),
    ],
)
async def test_receiver_statuses(clock: FakeClock, status: int, kind: OutcomeKind) -> None:
    async with running_receiver(statuses=[status]) as receiver:
        channel = WebhookChannel("crm", {"url": receiver.url, "method": "put"}, clock=clock)
        try:
            outcome = await channel.send(message())
        finally:
            await channel.aclose()
    assert (outcome.kind, outcome.http_status) == (kind, status)


def test_classify_keeps_retry_after_and_id() -> None:
    limited = classify_webhook(429, {"retry-after": "12"}, b"slow down", NOW)
    ok = classify_webhook(201, {}, b'{"id": 77}', NOW)
    plain = classify_webhook(204, {}, b"", NOW)
    assert limited.retry_after == 12.0 and limited.kind is OutcomeKind.TRANSIENT
    assert limited.pause == 12.0 and ok.pause is None
    assert (ok.kind, ok.provider_id) == (OutcomeKind.ACCEPTED, "77")
    assert (plain.kind, plain.provider_id) == (OutcomeKind.ACCEPTED, None)


async def test_refused_connection_is_transient(clock: FakeClock) -> None:
    channel = WebhookChannel("crm", {"url": f"http://127.0.0.1:{free_port()}/h"}, clock=clock)
    try:
        outcome = await channel.send(message())
    finally:
        await channel.aclose()
    assert outcome.kind is OutcomeKind.TRANSIENT, outcome.reason


async def test_read_timeout_is_in_doubt(clock: FakeClock) -> None:
    async with running_receiver(delay=0.5) as receiver:
        timeout = {"connect": 2, "read": 0.1, "write": 2, "pool": 2}
        channel = WebhookChannel("crm", {"url": receiver.url, "timeout": timeout}, clock=clock)
        try:
            outcome = await channel.send(message())
        finally:
            await channel.aclose()
    assert outcome.kind is OutcomeKind.IN_DOUBT, outcome.reason
    assert len(receiver.bodies) == 1  # it did arrive


async def test_a_body_that_is_not_a_mapping_is_not_sent(clock: FakeClock) -> None:
    async with running_receiver() as receiver:
        channel = WebhookChannel("crm", {"url": receiver.url}, clock=clock)
        try:
            outcome = await channel.send(message(["a", "list"]))
        finally:
            await channel.aclose()
    assert outcome.kind is OutcomeKind.TEMPLATE and receiver.bodies == []


async def test_probe(clock: FakeClock) -> None:
    async with running_receiver(path="/health") as receiver:
        up = WebhookChannel(
            "crm", {"url": "http://127.0.0.1:1/x", "probe_url": receiver.url}, clock=clock
        )
        down = WebhookChannel(
            "crm",
            {"url": "http://127.0.0.1:1/x", "probe_url": f"http://127.0.0.1:{free_port()}/"},
            clock=clock,
        )
        # Without probe_url: reachable when the url answers a HEAD at all (issue 15.9: a
        # refused receiver must keep the circuit open, not close it on every probe).
        refused = WebhookChannel("crm", {"url": "http://127.0.0.1:1/x"}, clock=clock)
        answers = WebhookChannel("crm", {"url": receiver.url}, clock=clock)
        channels = (up, down, refused, answers)
        try:
            seen = [await channel.probe() for channel in channels]
        finally:
            for channel in channels:
                await channel.aclose()
    assert seen == [True, False, False, True]


@pytest.mark.parametrize(
    ("config", "path"),
    [
        pytest.param({}, "channels.crm.url", id="no-url"),
        pytest.param({"url": "http://x", "method": "GET"}, "channels.crm.method", id="method"),
        pytest.param({"url": "http://x", "headers": ["a"]}, "channels.crm.headers", id="headers"),
    ],
)
def test_config_problems(clock: FakeClock, config: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookChannel("crm", config, clock=clock)
    assert [p.path for p in caught.value.problems] == [path]
