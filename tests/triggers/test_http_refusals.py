"""What the http trigger refuses, and how it says so: idempotency keys reused with another body
(422), refusals counted in /metrics and logged (phones masked), duplicates answered with their
notification, a too-deep event refused alone, a client that hangs up mid-body."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from nextstep.adapters.triggers.http import HttpTrigger, events_app
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import Event
from nextstep.engine.plugins import RuleResult
from tests.support.fake_emit import FakeEmit, fake_context
from tests.support.waiting import until
from tests.triggers.http_kit import AUTH, TOKEN, Endpoint, open_endpoint
from tests.triggers.loopback import serve
from tests.triggers.waiting import running

LOANS = "/events/loans"
LOGGER = "nextstep.adapters.triggers"


def refused(reason: str, trigger: str = LOANS) -> float:
    """The refusal counter's value now."""
    value = REGISTRY.get_sample_value(
        "nextstep_events_refused_total", {"trigger": trigger, "reason": reason}
    )
    return value or 0.0


def decide(event: Event) -> RuleResult | None:
    phone = str(event.data.get("phone", ""))
    if phone.startswith("+"):
        return RuleResult("loan-docs", "error", reason=f"to: {phone!r} is not a WhatsApp number")
    if event.data.get("again"):
        return RuleResult("loan-docs", "duplicate", 7, reason="duplicate of #3")
    return None


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    async with open_endpoint(tmp_path, decide) as opened:
        yield opened


# -- Idempotency-Key with another body ------------------------------------------------------
async def test_the_same_key_with_another_body_is_422(endpoint: Endpoint) -> None:
    key = {"Idempotency-Key": "order-1"}
    before = refused("idempotency_conflict")
    first = await endpoint.post({"n": 1, "m": 2}, headers=key)
    other = await endpoint.post({"n": 2}, headers=key)
    same = await endpoint.post(b'{"m": 2,  "n": 1}', headers=key)  # same event, other spelling
    assert first.status_code == 202 and same.status_code == 202
    assert same.json() == first.json() and same.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert "order-1" in other.json()["error"] and "different body" in other.json()["error"]
    assert len(endpoint.emit.events) == 1
    assert refused("idempotency_conflict") == before + 1


async def test_a_key_claimed_before_bodies_were_hashed_keeps_answering(
    endpoint: Endpoint,
) -> None:
    old = json.dumps({"events": 1, "notifications": [9]})
    endpoint.emit.progress[f"http:{LOANS}:idem:legacy"] = old
    answer = await endpoint.post({"anything": True}, headers={"Idempotency-Key": "legacy"})
    assert answer.status_code == 202 and answer.json() == {"events": 1, "notifications": [9]}
    assert endpoint.emit.calls == 0


# -- refusals: counted, logged ------------------------------------------------------------
async def test_refused_requests_are_counted_and_logged(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    reasons = ("unauthorized", "bad_body", "too_large", "render_error")
    before = {reason: refused(reason) for reason in reasons}
    assert (
        await endpoint.post({"a": 1}, headers={"Authorization": "Bearer no"})
    ).status_code == 401
    assert (await endpoint.post(b"{not json")).status_code == 400
    assert (await endpoint.post({"note": "x" * 3000})).status_code == 413
    answer = await endpoint.post([{"phone": "+34 600 111 222"}, {"n": 1}])
    assert answer.status_code == 202 and answer.json()["notifications"] == [1]
    assert {reason: refused(reason) - before[reason] for reason in reasons} == dict.fromkeys(
        reasons, 1.0
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4, warnings
    assert any("401" in w for w in warnings) and any("413" in w for w in warnings)
    render = next(w for w in warnings if "loan-docs" in w)
    assert "1222" in render and "600 111" not in render and "34600111" not in render


async def test_a_duplicate_is_answered_with_its_notification(endpoint: Endpoint) -> None:
    answer = await endpoint.post([{"again": True}, {"n": 1}])
    assert answer.json() == {
        "events": 2,
        "notifications": [1],
        "duplicates": [
            {"event": 0, "rule": "loan-docs", "notification": 7, "reason": "duplicate of #3"}
        ],
    }


# -- hostile bodies -----------------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [pytest.param(1000, id="1000"), pytest.param(5000, id="5000")])
async def test_a_too_deep_event_is_refused_alone(tmp_path: Path, depth: int) -> None:
    emit = FakeEmit()
    trigger = HttpTrigger({"path": LOANS}, fake_context(emit, str(tmp_path)))
    before = refused("bad_event")
    body = '[{"n": 1}, {"deep": ' + nested(depth) + '}, {"n": 2}]'
    async with (
        running(trigger, emit),
        serve(events_app({LOANS: trigger}, TOKEN)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        answer = await client.post(LOANS, content=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    doc = answer.json()
    assert (doc["events"], doc["notifications"]) == (3, [1, 2])
    assert [(e["event"], e["rule"]) for e in doc["errors"]] == [(1, None)]
    assert "nested deeper than" in doc["errors"][0]["reason"]
    assert [e.data for e in emit.events] == [{"n": 1}, {"n": 2}]
    assert [e.trigger["index"] for e in emit.events] == [0, 2]
    assert refused("bad_event") == before + 1


async def test_a_client_hanging_up_mid_body_is_one_quiet_line(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = httpx.URL(str(endpoint.client.base_url))
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        b"POST /events/loans HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        + b'{"note": "only part of it'
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "disconnected" in r.getMessage()]

    await until(lambda: bool(logged()))
    (line,) = logged()
    assert line.levelno in (logging.INFO, logging.WARNING) and line.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert endpoint.emit.calls == 0
    del reader
