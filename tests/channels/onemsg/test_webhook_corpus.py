"""Hostile webhook bodies (``corpus/``) against the real ack route, served on loopback.

Every body of ``corpus/answers.yaml`` is posted to ``POST /webhooks/1msg/<secret>`` and must get
its expected status and answer: a JSON object is never a 500 (nor a 400) — its malformed parts
are ignored and counted, the rest taken. Each is held to a time and memory bound (a case's
``seconds`` and ``megabytes``, else 5 s and 64 MB: wall time, and tracemalloc's peak of the
Python allocations of the request, client and route both); ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.sandbox.server import serve_asgi
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import Ack, AckReport
from nextstep.engine.rules.config import DEFAULT_MAX_BODY

CORPUS = Path(__file__).parent / "corpus"
CASES: dict[str, dict[str, Any]] = yaml.safe_load(
    (CORPUS / "answers.yaml").read_text(encoding="utf-8")
)
SECRET = "corpus-secret"


class Recorder:
    """The engine's side of the route: keeps every batch (nothing matches a notification)."""

    def __init__(self) -> None:
        self.batches: list[list[Ack]] = []

    async def record(self, acks: Sequence[Ack]) -> AckReport:
        self.batches.append(list(acks))
        return AckReport(matched=0, moved=0, kept=len(acks))


@contextlib.asynccontextmanager
async def route(recorder: Recorder) -> AsyncIterator[str]:
    """The 1MSG ack route with the default ``max_body``, on a free loopback port."""
    ready = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ready.set()
        yield

    routes = OneMsgChannel.ack_routes(recorder, SECRET, DEFAULT_MAX_BODY)
    async with serve_asgi(Starlette(routes=routes, lifespan=lifespan), ready) as (base, _server):
        yield f"{base}/webhooks/1msg/{SECRET}"


def body_of(case: dict[str, Any]) -> bytes:
    raw = (CORPUS / case["file"]).read_bytes()
    return gzip.decompress(raw) if case["file"].endswith(".gz") else raw


def test_every_body_file_is_listed() -> None:
    files = {p.name for p in CORPUS.iterdir()} - {"answers.yaml"}
    assert files == {case["file"] for case in CASES.values()}


@pytest.mark.parametrize("name", list(CASES))
async def test_corpus(name: str) -> None:
    case = CASES[name]
    recorder = Recorder()
    body = body_of(case)
    async with route(recorder) as url, httpx.AsyncClient(timeout=30) as client:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            answer = await client.post(
                url, content=body, headers={"Content-Type": "application/json"}
            )
        finally:
            seconds = time.perf_counter() - started
            megabytes = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    print(f"webhook corpus {name}: {seconds:.3f} s, {megabytes:.1f} MB")
    assert seconds < case.get("seconds", 5.0), f"{name}: {seconds:.2f} s"
    assert megabytes < case.get("megabytes", 64.0), f"{name}: {megabytes:.1f} MB"
    assert (answer.status_code, answer.json()) == (case["status"], case["answer"]), case["what"]
    taken = sum(len(batch) for batch in recorder.batches)
    assert taken == (case["answer"].get("acks", 0) if case["status"] == 200 else 0)


def _ignored(part: str) -> float:
    value = REGISTRY.get_sample_value(
        "nextstep_webhook_ignored_total", {"channel_type": "1msg", "part": part}
    )
    return value or 0.0


async def test_ignored_parts_are_counted_by_part() -> None:
    before = {part: _ignored(part) for part in ("ack", "entry", "status")}
    recorder = Recorder()
    async with route(recorder) as url, httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            url,
            json={
                "ack": [{"id": "wamid.1", "status": "read"}, 3, {"status": "read"}],
                "entry": [7, {"changes": [{"value": {"statuses": ["x"]}}]}],
            },
        )
    assert answer.json()["ignored"] == 4
    assert recorder.batches == [[Ack("wamid.1", "read")]]
    after = {part: _ignored(part) for part in before}
    assert {part: after[part] - before[part] for part in before} == {
        "ack": 2,
        "entry": 1,
        "status": 1,
    }
