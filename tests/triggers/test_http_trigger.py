"""The http trigger behind a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from nextstep.adapters.triggers.http import HttpTrigger, events_app
from nextstep.engine.errors import ConfigError, StoreError
from tests.support.fake_emit import FakeEmit, fake_context
from tests.triggers.http_kit import AUTH, TOKEN, Endpoint, open_endpoint
from tests.triggers.loopback import serve
from tests.triggers.waiting import running


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    async with open_endpoint(tmp_path) as opened:
        yield opened


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="not-bearer"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="longer"),
    ],
)
async def test_a_request_without_the_token_is_refused(
    endpoint: Endpoint, headers: dict[str, str]
) -> None:
    answer = await endpoint.client.post("/events/loans", json={"phone": "1"}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert endpoint.emit.calls == 0


async def test_an_object_becomes_one_event(endpoint: Endpoint) -> None:
    answer = await endpoint.post({"phone": "+34600111222", "stage": "docs"})
    assert answer.status_code == 202
    assert answer.json() == {"events": 1, "notifications": [1]}
    event = endpoint.emit.events[0]
    assert event.data == {"phone": "+34600111222", "stage": "docs"}
    assert event.trigger == {"kind": "http", "source": "/events/loans", "index": 0}


async def test_an_array_and_ndjson_are_batches(endpoint: Endpoint) -> None:
    array = await endpoint.post([{"n": 1}, {"n": 2}, {"n": 3}])
    assert array.json() == {"events": 3, "notifications": [1, 2, 3]}
    lines = b'{"n": 4}\n\n{"n": 5}\r\n'
    ndjson = await endpoint.post(lines, headers={"Content-Type": "application/x-ndjson"})
    guessed = await endpoint.post(b'{"n": 6}\n{"n": 7}\n')
    assert ndjson.json()["events"] == 2 and guessed.json()["events"] == 2
    assert [d["n"] for d in endpoint.emit.data()] == [1, 2, 3, 4, 5, 6, 7]
    assert len(endpoint.emit.batches) == 3  # one ledger transaction per request


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"{not json", "not JSON", id="not-json"),
        pytest.param(b'{"a": 1}\n{oops\n', "line 2", id="bad-ndjson-line"),
        pytest.param(b'[{"a": 1}, 2, "x"]', "event 1 is int", id="not-objects"),
    ],
)
async def test_a_body_that_is_not_events_is_400(
    endpoint: Endpoint, body: bytes, fragment: str
) -> None:
    answer = await endpoint.post(body)
    assert answer.status_code == 400
    assert fragment in json.dumps(answer.json())
    assert endpoint.emit.calls == 0


async def test_a_body_over_the_limit_is_413(endpoint: Endpoint) -> None:
    big = json.dumps({"note": "x" * 3000})
    answer = await endpoint.post(big)
    assert answer.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        yield b'{"note": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    streamed = await endpoint.post(None, content=chunks())
    assert streamed.status_code == 413
    assert endpoint.emit.calls == 0


async def test_schema_violations_are_all_listed(endpoint: Endpoint) -> None:
    body = [{"phone": "1", "stage": "docs"}, {"stage": "lost"}, {"phone": 5, "stage": "docs"}]
    answer = await endpoint.post(body, path="/events/strict")
    assert answer.status_code == 400
    violations = answer.json()["violations"]
    assert [(v["event"], v["path"]) for v in violations] == [(1, "/"), (1, "/stage"), (2, "/phone")]
    assert "'phone' is a required property" in violations[0]["message"]
    assert endpoint.emit.calls == 0  # nothing of a refused body is kept
    ok = await endpoint.post(body[:1], path="/events/strict")
    assert ok.status_code == 202


async def test_unknown_path_and_wrong_method(endpoint: Endpoint) -> None:
    assert (await endpoint.post({"a": 1}, path="/events/nope")).status_code == 404
    assert (await endpoint.client.get("/events/loans", headers=AUTH)).status_code == 405


async def test_explain_says_which_rules_skipped_and_why(endpoint: Endpoint) -> None:
    body = [
        {"phone": "1", "stage": "docs"},
        {"phone": "2", "stage": "approved"},
        {"phone": "bad", "stage": "docs"},
    ]
    plain = await endpoint.post(body)
    assert plain.json() == {
        "events": 3,
        "notifications": [1],
        "errors": [{"event": 2, "rule": "loan-docs", "reason": "'bad' is not a phone number"}],
    }
    explained = await endpoint.post(body, params={"explain": "1"})
    assert explained.json()["explain"][1] == {
        "event": 1,
        "rule": "loan-docs",
        "status": "skipped",
        "reason": "when: event.stage == 'docs' is false",
        "notification_id": None,
    }


async def test_the_same_idempotency_key_returns_the_first_answer(endpoint: Endpoint) -> None:
    key = {"Idempotency-Key": "order-77"}
    first = await endpoint.post([{"n": 1}, {"n": 2}], headers=key)
    again = await endpoint.post([{"n": 1}, {"n": 2}], headers=key)
    other = await endpoint.post([{"n": 3}], headers={"Idempotency-Key": "order-78"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"events": 2, "notifications": [1, 2]}
    assert again.headers["idempotent-replayed"] == "true"
    assert other.json()["notifications"] == [3]
    assert len(endpoint.emit.events) == 3
    # the claim is committed with the events, in the same batch
    assert [p.key for p in endpoint.emit.batches[0][1]] == ["http:/events/loans:idem:order-77"]


async def test_concurrent_requests_each_get_their_own_events_answered(
    endpoint: Endpoint,
) -> None:
    # Requests arriving while a write is under way share the next one (coalesce.py): however
    # they were joined, each answer counts its own events and names its own notifications.
    bodies = [[{"n": 10 * i + k} for k in range(i % 3 + 1)] for i in range(12)]
    answers = await asyncio.gather(*(endpoint.post(body) for body in bodies))
    assert [a.status_code for a in answers] == [202] * 12
    assert [a.json()["events"] for a in answers] == [len(b) for b in bodies]
    ids = [n for a in answers for n in a.json()["notifications"]]
    assert sorted(ids) == list(range(1, len(ids) + 1))
    by_id = {i + 1: event.data["n"] for i, event in enumerate(endpoint.emit.events)}
    for body, answer in zip(bodies, answers, strict=True):
        assert [by_id[n] for n in answer.json()["notifications"]] == [e["n"] for e in body]
    assert len(endpoint.emit.batches) <= len(bodies)


async def test_concurrent_requests_with_one_key_create_once(endpoint: Endpoint) -> None:
    key = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(*(endpoint.post({"n": 1}, headers=key) for _ in range(8)))
    assert {a.status_code for a in answers} == {202}
    assert {json.dumps(a.json()) for a in answers} == {
        json.dumps({"events": 1, "notifications": [1]})
    }
    assert len(endpoint.emit.events) == 1


async def test_the_idempotency_answer_outlives_the_trigger(tmp_path: Path) -> None:
    emit = FakeEmit()
    context = fake_context(emit, str(tmp_path))
    for _ in range(2):
        trigger = HttpTrigger({"path": "/events/loans"}, context)  # a daemon restart
        async with (
            running(trigger, emit),
            serve(events_app({"loans": trigger}, TOKEN)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            answer = await client.post(
                "/events/loans", json={"n": 1}, headers={**AUTH, "Idempotency-Key": "k"}
            )
            assert answer.json() == {"events": 1, "notifications": [1]}
    assert len(emit.events) == 1


async def test_a_stopped_trigger_answers_503(tmp_path: Path) -> None:
    trigger = HttpTrigger({"path": "loans"}, fake_context(FakeEmit(), str(tmp_path)))
    async with (
        serve(events_app({trigger.path: trigger}, TOKEN)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        answer = await client.post("/events/loans", json={}, headers=AUTH)
    assert answer.status_code == 503


def test_an_invalid_schema_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trigger.http.schema: is not a valid JSON Schema"):
        HttpTrigger(
            {"path": "/events/x", "schema": {"type": "nope"}},
            fake_context(FakeEmit(), str(tmp_path)),
        )
    assert HttpTrigger.source_key({"path": "/events/a/b/"}) == "/events/a/b"


async def test_a_ledger_failure_is_503_and_a_retry_works(endpoint: Endpoint) -> None:
    endpoint.emit.fail_with = StoreError("database is locked")
    key = {"Idempotency-Key": "retry-me"}
    failed = await endpoint.post({"n": 1}, headers=key)
    assert failed.status_code == 503 and "retry" in failed.json()["error"]
    endpoint.emit.fail_with = None
    retried = await endpoint.post({"n": 1}, headers=key)
    assert retried.status_code == 202 and retried.json()["notifications"] == [1]
