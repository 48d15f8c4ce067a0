"""The http trigger's test kit: a real uvicorn server on loopback with two endpoints."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from nextstep.adapters.triggers.http import HttpTrigger, events_app
from nextstep.engine.model import Event
from nextstep.engine.plugins import RuleResult
from tests.support.fake_emit import FakeEmit, fake_context
from tests.triggers.loopback import serve
from tests.triggers.waiting import running

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCHEMA = {
    "type": "object",
    "required": ["phone", "stage"],
    "properties": {"phone": {"type": "string"}, "stage": {"enum": ["docs", "approved"]}},
}


def decide(event: Event) -> RuleResult | None:
    if event.data.get("stage") == "approved":
        return RuleResult("loan-docs", "skipped", reason="when: event.stage == 'docs' is false")
    if event.data.get("phone") == "bad":
        return RuleResult("loan-docs", "error", reason="'bad' is not a phone number")
    return None


@dataclass
class Endpoint:
    client: httpx.AsyncClient
    emit: FakeEmit
    trigger: HttpTrigger

    async def post(
        self, body: Any = None, *, path: str = "/events/loans", **kw: Any
    ) -> httpx.Response:
        headers = {**AUTH, **kw.pop("headers", {})}
        if body is not None:
            kw["content"] = body if isinstance(body, bytes | str) else json.dumps(body)
        return await self.client.post(path, headers=headers, **kw)


@contextlib.asynccontextmanager
async def open_endpoint(tmp_path: Path, decide: Any = decide) -> AsyncIterator[Endpoint]:
    """``/events/loans`` (2048-byte bodies) and ``/events/strict`` (with :data:`SCHEMA`)."""
    emit = FakeEmit(decide, rule_id="loan-docs")
    context = fake_context(emit, str(tmp_path))
    loans = HttpTrigger({"path": "/events/loans", "max_body": 2048}, context)
    strict = HttpTrigger({"path": "/events/strict", "schema": SCHEMA}, context)
    triggers = {loans.path: loans, strict.path: strict}
    async with (
        running(loans, emit),
        running(strict, emit),
        serve(events_app(triggers, TOKEN)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield Endpoint(client, emit, loans)
