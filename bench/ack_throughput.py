"""Acks processed per second by the 1MSG webhook, beside a bare Starlette endpoint.

One server process (uvicorn on loopback, one worker) serves two routes: ``/bare``, which only
parses the JSON body, and the real ``/webhooks/1msg/<secret>``, which parses, applies every
ack to a SQLite ledger of notifications already sent, and commits before answering. This
process posts the same batches to both with aiohttp at high concurrency and prints acks/s.

    .venv/bin/python bench/ack_throughput.py [--notifications 10000] [--batch 50]
                                             [--concurrency 32]

Bounded: a fixed number of batches, each request with a timeout, the server stopped at the
end. Target: at least 3,000 acks/s through the real webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret"
TARGET = 3000.0


# -- the server process -------------------------------------------------------------------
def _seed(store: Any, count: int) -> None:
    from nextstep.engine.ledger.base import AttemptResult, NewNotification
    from nextstep.engine.model import State

    items = [
        NewNotification(
            rule_id="bench",
            rule_version="v1",
            channel="whatsapp",
            recipient=f"34600{i:06d}",
            fields={"template": "t", "params": ["x"]},
            event={"i": i},
            created_at=1.0,
        )
        for i in range(count)
    ]
    ids = [e.id for e in store.enqueue(items)]
    store.lease_due(1.0, count, ids=ids)
    store.record_attempts(
        [
            AttemptResult(
                nid, 1.0, State.SENT, {"kind": "accepted"}, provider_id=f"wamid.{i}", attempt=1
            )
            for i, nid in enumerate(ids)
        ]
    )


def serve(db: str, notifications: int) -> None:
    """Run the two endpoints until stdin closes; prints ``PORT <n>`` once listening."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
    from nextstep.engine.clock import SystemClock
    from nextstep.engine.delivery.acksink import AckSink
    from nextstep.engine.delivery.fallbacks import PolicyContext, RuleBook
    from nextstep.engine.ledger.runner import LedgerRunner
    from nextstep.engine.ledger.sqlite import SqliteStore
    from nextstep.engine.runtime.server import create_app, make_server

    store = SqliteStore(db)
    _seed(store, notifications)
    runner = LedgerRunner(store)
    ctx = PolicyContext(rules=RuleBook(lambda: {}))

    async def bare(request: Request) -> Response:
        doc = orjson.loads(await request.body())
        return JSONResponse({"ok": True, "acks": len(doc.get("ack") or ())})

    async def stats(request: Request) -> Response:
        by_state: dict[str, int] = {}
        for (_, state), count in store.counts().items():
            by_state[state] = by_state.get(state, 0) + count
        return JSONResponse(by_state)

    routes = [
        Route("/bare", bare, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        *OneMsgChannel.ack_routes(AckSink(runner, SystemClock(), ctx), SECRET, 8 * 1_048_576),
    ]
    app = create_app(lambda: {"status": "ok"}, routes)
    server = make_server(app, "127.0.0.1", 0)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        print(f"PORT {server.bound.rpartition(':')[2]}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.should_exit = True
        await task

    asyncio.run(main())
    runner.close()


# -- the load generator -------------------------------------------------------------------
def batches(notifications: int, size: int, seed: int = 1) -> list[bytes]:
    """sent, delivered and read for every notification, shuffled, in bodies of ``size``."""
    acks = [
        {"id": f"wamid.{i}", "status": status, "chatId": f"34600{i:06d}@c.us"}
        for status in ("sent", "delivered", "read")
        for i in range(notifications)
    ]
    random.Random(seed).shuffle(acks)
    return [
        orjson.dumps({"instanceId": "bench", "ack": acks[i : i + size]})
        for i in range(0, len(acks), size)
    ]


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Post every body with ``concurrency`` requests in flight; returns the seconds taken."""
    queue = list(reversed(bodies))
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)
    ) as session:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def measure(port: int, args: argparse.Namespace) -> None:
    base = f"http://127.0.0.1:{port}"
    bodies = batches(args.notifications, args.batch)
    total = args.notifications * 3
    await post_all(f"{base}/bare", bodies[: max(1, len(bodies) // 10)], args.concurrency)
    bare = await post_all(f"{base}/bare", bodies, args.concurrency)
    ours = await post_all(f"{base}/webhooks/1msg/{SECRET}", bodies, args.concurrency)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/stats") as response:
        states = await response.json()
    print(
        f"ack_throughput: {total} acks in {len(bodies)} batches of {args.batch}, "
        f"concurrency {args.concurrency}, {os.cpu_count()} cores"
    )
    print(f"  bare Starlette endpoint (parse only): {total / bare:10,.0f} acks/s")
    verdict = "ok" if total / ours >= TARGET else "BELOW TARGET"
    print(
        f"  nextstep webhook (parse + ledger):    {total / ours:10,.0f} acks/s"
        f"  (target >= {TARGET:,.0f}/s: {verdict})"
    )
    print(f"  ledger afterwards: {states}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.notifications)
        return
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            __file__,
            "--serve",
            str(Path(folder) / "bench.db"),
            "--notifications",
            str(args.notifications),
        ]
        with subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as server:
            assert server.stdout is not None and server.stdin is not None
            line = server.stdout.readline()
            if not line.startswith("PORT "):
                raise SystemExit(f"the bench server did not start: {line!r}")
            try:
                asyncio.run(measure(int(line.split()[1]), args))
            finally:
                server.stdin.close()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
