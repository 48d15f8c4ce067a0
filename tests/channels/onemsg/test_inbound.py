"""Messages people send, as 1MSG posts them: read into InboundMessage values (echoes left out,
Meta's raw envelope too), handed to a recorder that keeps messages, over real HTTP; the
sandbox posts them and answers sendMessage only inside the 24-hour window."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from nextstep.adapters.channels.onemsg.acks import parse_payload
from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.engine.clock import FakeClock
from nextstep.engine.model import Ack, AckReport, InboundMessage, InboundReport, OutcomeKind
from nextstep.engine.plugins import MessageRecorder, ReceivesMessages, SendsText
from nextstep.engine.rules.config import DEFAULT_MAX_BODY
from tests.channels.onemsg.test_webhook_corpus import CASES, body_of
from tests.delivery.serving import serve
from tests.support.sandbox import SandboxHandle, running_receiver

PHONE = "34600111222"


def _message(**extra: Any) -> dict[str, Any]:
    return {
        "id": "wamid.IN1",
        "type": "chat",
        "body": " STOP ",
        "chatId": f"{PHONE}@c.us",
        "author": f"{PHONE}@c.us",
        "fromMe": False,
        "self": 0,
        "time": "1700000000",
        "senderName": "Ana",
        "quotedMsgId": None,
        **extra,
    }


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(
            _message(),
            InboundMessage("wamid.IN1", PHONE, " STOP ", "chat", 1700000000.0, None, "I", "Ana"),
            id="chat",
        ),
        pytest.param(
            _message(quotedMsgId="wamid.OUT"),
            InboundMessage(
                "wamid.IN1", PHONE, " STOP ", "chat", 1700000000.0, "wamid.OUT", "I", "Ana"
            ),
            id="reply",
        ),
        pytest.param(
            _message(type="image", body="https://s3/tmp", caption="my ID card", time=17),
            InboundMessage("wamid.IN1", PHONE, "my ID card", "image", 17.0, None, "I", "Ana"),
            id="media-caption",
        ),
        pytest.param(
            _message(chatId="120363@g.us", author="34600111333@c.us"),
            InboundMessage(
                "wamid.IN1", "34600111333", " STOP ", "chat", 1700000000.0, None, "I", "Ana"
            ),
            id="group-author",
        ),
        pytest.param(_message(fromMe=True), None, id="echo"),
        pytest.param(_message(self=1), None, id="echo-self"),
        pytest.param(_message(chatId="AB.954@lid", author=None), None, id="no-phone"),
        pytest.param(_message(id=None), None, id="no-id"),
    ],
)
def test_normalised_messages(item: dict[str, Any], expected: InboundMessage | None) -> None:
    payload = parse_payload({"instanceId": "I", "messages": [item, 7, "x"]})
    assert payload is not None
    assert payload.inbound == ([] if expected is None else [expected])
    assert payload.messages == 3
    assert payload.echoes == (1 if item.get("fromMe") or item.get("self") else 0)


def test_meta_envelope_messages() -> None:
    value = {
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": PHONE}],
        "messages": [
            {
                "from": PHONE,
                "id": "m1",
                "timestamp": "17",
                "type": "text",
                "text": {"body": "Baja"},
                "context": {"id": "wamid.OUT"},
            },
            {
                "from": PHONE,
                "id": "m2",
                "timestamp": "18",
                "type": "button",
                "button": {"text": "Stop promotions"},
            },
            {"from": "x", "id": "m3"},
        ],
        "statuses": [{"id": "wamid.OUT", "status": "read"}],
    }
    payload = parse_payload({"entry": [{"id": "E", "changes": [{"value": value}]}]})
    assert payload is not None
    assert payload.acks == [Ack("wamid.OUT", "read")]
    assert payload.inbound == [
        InboundMessage("m1", PHONE, "Baja", "text", 17.0, "wamid.OUT", "E", "Ana"),
        InboundMessage("m2", PHONE, "Stop promotions", "button", 18.0, None, "E", "Ana"),
    ]


class Recorder:
    """Keeps acks and messages (a MessageRecorder): the second copy of an id is a duplicate."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []

    async def record(self, acks: Sequence[Ack]) -> AckReport:
        return AckReport(kept=len(acks))

    async def record_messages(self, messages: Sequence[InboundMessage]) -> InboundReport:
        seen = {m.provider_id for m in self.messages}
        new = [m for m in messages if m.provider_id not in seen]
        self.messages.extend(new)
        return InboundReport(stored=len(new), duplicates=len(messages) - len(new))


@contextlib.asynccontextmanager
async def route(recorder: Recorder) -> AsyncIterator[str]:
    """The 1MSG webhook route on a free loopback port, recording into ``recorder``."""
    routes = OneMsgChannel.ack_routes(recorder, "s", DEFAULT_MAX_BODY)
    async with serve(Starlette(routes=routes)) as base:
        yield f"{base}/webhooks/1msg/s"


def test_the_channel_has_the_abilities() -> None:
    assert isinstance(OneMsgChannel, ReceivesMessages)
    assert isinstance(Recorder(), MessageRecorder)
    assert OneMsgChannel.message_account({"instance_id": 123}) == "123"


async def test_the_route_hands_messages_over_and_counts_resends() -> None:
    recorder = Recorder()
    body = {"instanceId": "I", "messages": [_message(), _message(id="e", fromMe=True)]}
    async with route(recorder) as url, httpx.AsyncClient(timeout=10) as client:
        first = (await client.post(url, json=body)).json()
        again = (await client.post(url, json=body)).json()
    assert (first["stored"], first["duplicates"], first["echoes"]) == (1, 0, 1)
    assert (again["stored"], again["duplicates"]) == (0, 1)
    assert [m.provider_id for m in recorder.messages] == ["wamid.IN1"]


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_bodies_with_a_message_recorder(name: str) -> None:
    case = CASES[name]
    async with route(Recorder()) as url, httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            url, content=body_of(case), headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == case["status"], case["what"]
    if case["status"] == 200:
        assert {k: v for k, v in answer.json().items() if k in case["answer"]} == case["answer"]


async def test_sandbox_posts_inbound_and_answers_text_only_in_the_window(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {sandbox.token}"}
    channel = OneMsgChannel("wa", sandbox.channel_config("i1"), clock=FakeClock())
    assert isinstance(channel, SendsText)
    try:
        closed = await channel.send_text(PHONE, "hello")
        assert not closed.ok and "Dialog window is closed" in closed.reason
        async with running_receiver() as hook:
            sandbox.state.instance("i1").webhooks = [hook.url]
            answer = await http.post(
                sandbox.url("_sandbox", "i1/inbound"),
                json={"from": "+" + PHONE, "text": "Baja", "quoted": "wamid.OUT", "repeat": 2},
                headers=auth,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["answers"] == [200, 200]
            await hook.wait_for(2)
        assert hook.bodies[0] == hook.bodies[1]
        [item] = hook.bodies[0]["messages"]
        assert (item["chatId"], item["body"], item["quotedMsgId"], item["fromMe"]) == (
            f"{PHONE}@c.us",
            "Baja",
            "wamid.OUT",
            False,
        )
        opened = await channel.send_text(PHONE, "Done: no more messages.", quoted_id=item["id"])
        assert opened.ok and opened.provider_id
        [text] = sandbox.state.texts
        assert (text["phone"], text["body"], text["quotedMsgId"]) == (
            PHONE,
            "Done: no more messages.",
            item["id"],
        )
        refused = await http.post(
            sandbox.url("_sandbox", "i1/inbound"), json={"from": "12", "text": "x"}, headers=auth
        )
        assert refused.status_code == 400
    finally:
        await channel.aclose()
    assert closed.kind in set(OutcomeKind)
