"""``POST /webhooks/1msg/<secret>`` served by uvicorn on loopback, against a real ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.engine.clock import FakeClock
from nextstep.engine.delivery.acksink import AckSink
from nextstep.engine.errors import NextstepError
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from tests.delivery.kit import Ledger, person
from tests.delivery.serving import serve


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock, ledger_url: str) -> Iterator[Ledger]:
    kit = Ledger.open(tmp_path, clock, ledger_url)
    yield kit
    kit.store.close()


@pytest.fixture
async def url(ledger: Ledger) -> AsyncIterator[str]:
    runner = LedgerRunner(ledger.store)
    sink = AckSink(runner, ledger.clock, lambda: ledger.ctx)
    routes = OneMsgChannel.ack_routes(sink, "s3cret", 64 * 1024)
    async with serve(Starlette(routes=routes)) as base:
        yield base
    runner.close(close_store=False)


async def post(url: str, body: bytes | dict[str, object]) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, content=content, headers={"Content-Type": "application/json"})


async def test_batch_of_acks(ledger: Ledger, url: str) -> None:
    first = ledger.sent(person(1), "wamid.1")
    second = ledger.sent(person(2), "wamid.2")
    payload = {
        "instanceId": "inst1",
        "ack": [
            {"id": "wamid.1", "status": "delivered", "chatId": "1@c.us"},
            {"id": "wamid.2", "status": "read"},
            {"id": "wamid.1", "status": "delivered"},
            {"id": "wamid.unknown", "status": "read"},
            {"status": "read"},
        ],
        "messages": [{"id": "in.1", "type": "chat", "body": "hello"}],
    }
    answer = await post(f"{url}/webhooks/1msg/s3cret", payload)
    assert answer.status_code == 200
    assert answer.json() == {
        "ok": True,
        "acks": 4,
        "matched": 3,
        "kept": 1,
        "messages": 1,
        "ignored": 1,
    }
    assert ledger.state(first) is State.DELIVERED
    assert ledger.state(second) is State.READ
    assert ledger.pending_acks() == 1


@pytest.mark.parametrize("secret", ["wrong", "s3cre", "s3cret2", "S3CRET"])
async def test_wrong_secret_is_404_and_records_nothing(
    ledger: Ledger, url: str, secret: str
) -> None:
    nid = ledger.sent(person(), "wamid.1")
    answer = await post(
        f"{url}/webhooks/1msg/{secret}",
        {"ack": [{"id": "wamid.1", "status": "read"}, {"id": "wamid.x", "status": "read"}]},
    )
    assert answer.status_code == 404
    assert ledger.state(nid) is State.SENT
    assert ledger.pending_acks() == 0
    assert ledger.history_kinds(nid) == ["created", "attempt"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"{not json", 400, id="bad-json"),
        pytest.param(b"[1, 2]", 400, id="not-an-object"),
        pytest.param(b'{"ack": "' + b"x" * 70_000 + b'"}', 413, id="too-large"),
    ],
)
async def test_bad_bodies(ledger: Ledger, url: str, body: bytes, status: int) -> None:
    answer = await post(f"{url}/webhooks/1msg/s3cret", body)
    assert answer.status_code == status
    assert ledger.pending_acks() == 0


def test_an_empty_secret_is_refused(ledger: Ledger) -> None:
    runner = LedgerRunner(ledger.store)
    try:
        with pytest.raises(NextstepError, match="webhook_secret"):
            OneMsgChannel.ack_routes(AckSink(runner, ledger.clock, ledger.ctx), "", 1024)
    finally:
        runner.close(close_store=False)


async def test_concurrent_calls_are_all_recorded(ledger: Ledger, url: str) -> None:
    ids = [ledger.sent(person(i), f"wamid.{i}") for i in range(40)]
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{url}/webhooks/1msg/s3cret",
                    json={"ack": [{"id": f"wamid.{i}", "status": "read"}]},
                )
                for i in range(40)
            )
        )
    assert [a.status_code for a in answers] == [200] * 40
    assert {ledger.state(nid) for nid in ids} == {State.READ}


async def test_ledger_failure_is_503(ledger: Ledger, url: str) -> None:
    ledger.store.close()
    answer = await post(f"{url}/webhooks/1msg/s3cret", {"ack": [{"id": "w", "status": "read"}]})
    assert answer.status_code == 503
