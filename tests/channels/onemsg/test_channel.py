"""OneMsgChannel against the sandbox on loopback: sends, network failures, channel management."""

from __future__ import annotations

import asyncio
import email.utils
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from nextstep.adapters.channels.onemsg.acks import ack_from
from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.payload import send_template_body
from nextstep.adapters.channels.onemsg.sandbox.scenarios import default_scenario, scenario_from
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError, DeliveryError
from nextstep.engine.model import Message, OutcomeKind
from tests.support.sandbox import SandboxHandle, running_receiver, running_sandbox


def message(to: str = "34600111222", **fields: Any) -> Message:
    doc: dict[str, Any] = {
        "template": "next_step",
        "namespace": NAMESPACE,
        "language": "en",
        "params": ["Maria", "loan application #12345", "upload documents by June 20"],
        "text": "Hello, Maria! …",
    }
    doc.update(fields)
    return Message("whatsapp", to, doc)


@pytest.fixture
async def channel(sandbox: SandboxHandle, clock: FakeClock) -> AsyncIterator[OneMsgChannel]:
    chan = OneMsgChannel("whatsapp", sandbox.channel_config("i1", timeout=5), clock=clock)
    yield chan
    await chan.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_send_posts_the_preview_body(channel: OneMsgChannel, sandbox: SandboxHandle) -> None:
    outcome = await channel.send(message())
    assert outcome.kind is OutcomeKind.ACCEPTED
    assert outcome.provider_id and outcome.provider_id.startswith("wamid.")
    assert sandbox.sends()[0].body == send_template_body(message())
    assert OneMsgChannel.preview(message(), {}).body == send_template_body(message())


def test_payload_shape() -> None:
    assert send_template_body(message(params=["Ana", "b", "c"])) == {
        "phone": "34600111222",
        "template": "next_step",
        "namespace": NAMESPACE,
        "language": {"policy": "deterministic", "code": "en"},
        "params": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "b"},
                    {"type": "text", "text": "c"},
                ],
            }
        ],
    }
    assert "params" not in send_template_body(message(template="case_closed", params=[]))


@pytest.mark.parametrize(
    ("to", "kind", "code"),
    [
        pytest.param("34600110001", OutcomeKind.RECIPIENT, 131026, id="0001"),
        pytest.param("34600110002", OutcomeKind.TRANSIENT, None, id="0002"),
        pytest.param("34600110003", OutcomeKind.TRANSIENT, None, id="0003"),
        pytest.param("34600110004", OutcomeKind.ACCOUNT, 131042, id="0004"),
        pytest.param("34600110009", OutcomeKind.ACCOUNT, None, id="0009"),
    ],
)
async def test_scripted_failures(
    channel: OneMsgChannel, to: str, kind: OutcomeKind, code: int | None
) -> None:
    outcome = await channel.send(message(to))
    assert (outcome.kind, outcome.code) == (kind, code)
    if to.endswith("0003"):
        assert outcome.retry_after == 2.0


async def test_transient_then_accepted(channel: OneMsgChannel) -> None:
    kinds = [(await channel.send(message("34600110002"))).kind for _ in range(3)]
    assert kinds == [OutcomeKind.TRANSIENT, OutcomeKind.TRANSIENT, OutcomeKind.ACCEPTED]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        pytest.param({"template": "nope"}, OutcomeKind.TEMPLATE, id="unknown-template"),
        pytest.param({"params": ["Maria"]}, OutcomeKind.TEMPLATE, id="count-mismatch"),
        pytest.param({"params": ["Maria", "x" * 1000, "y"]}, OutcomeKind.TEMPLATE, id="too-long"),
    ],
)
async def test_template_failures(
    channel: OneMsgChannel, fields: dict[str, Any], kind: OutcomeKind
) -> None:
    assert (await channel.send(message(**fields))).kind is kind


@pytest.mark.parametrize(
    "params",
    [
        ["Maria", "two\nlines", "x"],
        ["Maria", "", "x"],
        ["Maria", "a     b", "x"],
        ["Maria", "vertical\vtab", "x"],
        ["Maria", "line\u2028separator", "x"],
    ],
)
async def test_preflight_refuses_without_a_request(
    channel: OneMsgChannel, sandbox: SandboxHandle, params: list[str]
) -> None:
    outcome = await channel.send(message(params=params))
    assert outcome.kind is OutcomeKind.TEMPLATE and outcome.reason.startswith("not sent")
    assert sandbox.sends() == []


async def test_read_timeout_is_in_doubt(clock: FakeClock) -> None:
    async with running_sandbox(scenario=default_scenario(slow=2.0)) as sandbox:
        timeout = {"connect": 2, "read": 0.2, "write": 2, "pool": 2}
        chan = OneMsgChannel("wa", sandbox.channel_config(timeout=timeout), clock=clock)
        try:
            outcome = await chan.send(message("34600110005"))
        finally:
            await chan.aclose()
    assert outcome.kind is OutcomeKind.IN_DOUBT, outcome.reason


async def test_refused_connection_is_transient(clock: FakeClock) -> None:
    config = {"base_url": f"http://127.0.0.1:{free_port()}", "instance_id": "i1", "token": "t"}
    chan = OneMsgChannel("wa", config, clock=clock)
    try:
        outcome = await chan.send(message())
        probe = await chan.probe()
    finally:
        await chan.aclose()
    assert outcome.kind is OutcomeKind.TRANSIENT, outcome.reason
    assert probe is False


async def test_waiting_for_a_pooled_connection_is_transient(clock: FakeClock) -> None:
    async with running_sandbox(scenario=default_scenario(slow=0.5)) as sandbox:
        timeout = {"connect": 2, "read": 5, "write": 2, "pool": 0.1}
        config = sandbox.channel_config(timeout=timeout, max_connections=1)
        chan = OneMsgChannel("wa", config, clock=clock)
        try:
            slow = asyncio.create_task(chan.send(message("34600110005")))
            await sandbox.state.wait_count("arrived", 1)  # it holds the only connection
            queued = await chan.send(message())
            first = await slow
        finally:
            await chan.aclose()
    assert queued.kind is OutcomeKind.TRANSIENT, queued.reason
    assert first.kind is OutcomeKind.ACCEPTED


async def _drop_after_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    writer.close()  # the whole request arrived; no answer


async def test_connection_dropped_after_the_request_is_in_doubt(clock: FakeClock) -> None:
    server = await asyncio.start_server(_drop_after_reading, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = {"base_url": f"http://127.0.0.1:{port}", "instance_id": "i1", "token": "t"}
    chan = OneMsgChannel("wa", config, clock=clock)
    try:
        outcome = await chan.send(message())
    finally:
        await chan.aclose()
        server.close()
        await server.wait_closed()
    assert outcome.kind is OutcomeKind.IN_DOUBT, outcome.reason


async def test_token_never_leaks_into_outcomes(clock: FakeClock) -> None:
    token = "s3cr3t-token-value"

    def echo(request: httpx.Request) -> httpx.Response:
        seen = request.headers["Authorization"].removeprefix("Bearer ")
        return httpx.Response(401, json={"error": f'Wrong token "{seen}" for channel "i1".'})

    config = {"base_url": "http://1msg.test", "instance_id": "i1", "token": token}
    chan = OneMsgChannel("wa", config, clock=clock, transport=httpx.MockTransport(echo))
    outcome = await chan.send(message())
    await chan.aclose()
    assert outcome.kind is OutcomeKind.ACCOUNT
    assert token not in outcome.reason and token not in outcome.answer
    assert "***" in outcome.answer


async def test_retry_after_http_date_uses_the_channel_clock(clock: FakeClock) -> None:
    date = email.utils.formatdate(clock.now() + 90, usegmt=True)
    transport = httpx.MockTransport(
        lambda request: httpx.Response(429, headers={"Retry-After": date})
    )
    config = {"base_url": "http://1msg.test", "instance_id": "i1", "token": "t"}
    chan = OneMsgChannel("wa", config, clock=clock, transport=transport)
    outcome = await chan.send(message())
    await chan.aclose()
    assert outcome.kind is OutcomeKind.TRANSIENT and outcome.retry_after == 90.0


def test_missing_config_lists_every_key(clock: FakeClock) -> None:
    with pytest.raises(ConfigError) as caught:
        OneMsgChannel("wa", {"base_url": "http://x"}, clock=clock)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["channels.wa.instance_id", "channels.wa.token"]


async def test_probe_follows_the_channel_status(clock: FakeClock) -> None:
    scenario = scenario_from({"status": "disconnected", "status_recover_after": 1})
    async with running_sandbox(scenario=scenario) as sandbox:
        chan = OneMsgChannel("wa", sandbox.channel_config(), clock=clock)
        try:
            seen = [await chan.probe(), await chan.probe()]
        finally:
            await chan.aclose()
    assert seen == [False, True]


async def test_list_templates_pages_and_normalises(channel: OneMsgChannel) -> None:
    templates = await channel.list_templates(page=2)
    keys = {t.key for t in templates}
    assert {
        ("next_step", "en"),
        ("next_step_short", "en"),
        ("next_step", "es"),
        ("case_closed", "en"),
        ("spring_promo", "en"),
    } <= keys
    assert len(templates) == 8  # paging collected every record once
    short = next(t for t in templates if t.name == "next_step_short")
    assert (short.approved, short.variables, short.namespace) == (True, 2, NAMESPACE)
    assert not next(t for t in templates if t.name == "spring_promo").approved


async def test_hook_info(channel: OneMsgChannel) -> None:
    accepted = await channel.send(message("34600110007"))
    assert accepted.provider_id
    hooks = await channel.get_hook_info(accepted.provider_id)
    assert [h["status"] for h in hooks] == ["sent", "delivered", "read"]


async def test_webhooks_and_settings(channel: OneMsgChannel, sandbox: SandboxHandle) -> None:
    async with running_receiver() as receiver:
        assert await channel.set_webhooks(["https://app.1msg.io/inbox"]) == [
            "https://app.1msg.io/inbox"
        ]
        urls = await channel.register_webhook(receiver.url)
        again = await channel.register_webhook(receiver.url)
        settings = await channel.update_settings(ackNotificationsOn=True)
        assert urls == again == ["https://app.1msg.io/inbox", receiver.url]
        assert await channel.get_webhooks() == urls
        assert settings["ackNotificationsOn"] is True
        accepted = await channel.send(message())
        await sandbox.wait_acks(3)
    assert [a["status"] for a in receiver.acks() if a["id"] == accepted.provider_id] == [
        "sent",
        "delivered",
        "read",
    ]
    with pytest.raises(ValueError):
        await channel.set_webhooks([f"https://x/{n}" for n in range(6)])


async def test_management_calls_raise_delivery_errors(clock: FakeClock) -> None:
    config = {"base_url": f"http://127.0.0.1:{free_port()}", "instance_id": "i1", "token": "t"}
    chan = OneMsgChannel("wa", config, clock=clock)
    try:
        with pytest.raises(DeliveryError) as caught:
            await chan.list_templates()
    finally:
        await chan.aclose()
    assert caught.value.outcome.kind is OutcomeKind.TRANSIENT


async def test_wrong_token_on_management_is_account(
    sandbox: SandboxHandle, clock: FakeClock
) -> None:
    chan = OneMsgChannel("wa", {**sandbox.channel_config(), "token": "wrong"}, clock=clock)
    try:
        with pytest.raises(DeliveryError) as caught:
            await chan.get_webhooks()
    finally:
        await chan.aclose()
    assert caught.value.outcome.kind is OutcomeKind.ACCOUNT


def test_failed_acks_carry_their_class() -> None:
    ack = ack_from(
        {"id": "w", "status": "failed", "error": "User's number is part of an experiment"}
    )
    assert ack is not None and ack.failure is OutcomeKind.RECIPIENT
