"""Does a channel reach its configured rate whatever the provider's latency? A sweep.

For each sandbox latency (50 ms, 300 ms, 1 s, 2 s by default) a fresh sandbox process (the
1MSG-compatible API on loopback, its rate limit lifted, acks off) answers:

* nextstep: a fresh SQLite ledger of ``--count`` queued notifications, the real 1MSG channel
  and the dispatcher with DEFAULT settings but ``rate: 1000/s`` (``max_in_flight``, the
  connection pool and the concurrency controller as shipped), until every one is recorded;
* bare: an aiohttp loop posting the same bodies with as many workers as the in-flight target
  nextstep settled at (no rate limit, nothing recorded): what the machine and the sandbox
  serve at that concurrency.

msg/s is the sustained rate: answers between the 10th and the 90th percentile of answer times
(the first round trip fills the pipeline once; it is not throughput). End to end (count over
the whole run, fill and drain included) is printed beside it.

    .venv/bin/python bench/latency_sweep.py [--count 6000] [--latencies 0.05,0.3,1,2]

Target: >= 950 msg/s at every latency. Bounded: fixed counts, each phase under ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import send_throughput as st  # noqa: E402  (the sandbox, the queue and the bare loop)

RATE = "1000/s"
TARGET = 950.0


@dataclass
class Sweep:
    """One latency's figures."""

    latency: float
    sustained: float
    end_to_end: float
    target: int
    measured_latency: float | None
    peak_in_flight: int
    sent: int
    bare: float


def sustained(times: list[float]) -> float:
    """Answers per second between the 10th and the 90th percentile of their times."""
    times = sorted(times)
    lo, hi = len(times) // 10, len(times) * 9 // 10
    span = times[hi] - times[lo]
    return (hi - lo) / span if span > 0 else float("inf")


class Timed:
    """A channel that notes when each answer came (delegates everything else)."""

    def __init__(self, channel: object) -> None:
        self.inner = channel
        self.name = channel.name  # type: ignore[attr-defined]
        self.answers: list[float] = []

    async def send(self, message: object) -> object:
        outcome = await self.inner.send(message)  # type: ignore[attr-defined]
        self.answers.append(time.perf_counter())
        return outcome

    async def probe(self) -> bool:
        return bool(await self.inner.probe())  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.inner.aclose()  # type: ignore[attr-defined]


async def run_nextstep(
    base_url: str, db: str, count: int, limit: float, ceiling: int | None
) -> Sweep:
    """The dispatcher with default settings at ``rate: 1000/s`` over ``db`` (``ceiling``: a
    ``max_in_flight`` setting, for comparison with a fixed one)."""
    from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
    from nextstep.engine.clock import SystemClock
    from nextstep.engine.ledger import open_store
    from nextstep.engine.ledger.runner import LedgerRunner
    from nextstep.engine.rules.rule import RetryPolicy
    from nextstep.engine.sending.dispatcher import Dispatcher
    from nextstep.engine.sending.ratelimit import channel_limits

    clock = SystemClock()
    settings = {"base_url": base_url, "instance_id": st.INSTANCE, "token": st.TOKEN}
    channel = Timed(OneMsgChannel("whatsapp", settings, clock=clock))
    runner = LedgerRunner(open_store(f"sqlite:///{db}"))
    chosen = {"rate": RATE} if ceiling is None else {"rate": RATE, "max_in_flight": ceiling}
    limits = channel_limits("1msg", chosen)
    policy = RetryPolicy()
    dispatcher = Dispatcher(
        runner,
        {"whatsapp": channel},  # type: ignore[dict-item]
        lambda _n: policy,
        clock,
        {"whatsapp": limits},
    )
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, dispatcher.status()["whatsapp"].in_flight)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        started = time.perf_counter()
        await asyncio.wait_for(dispatcher.run_until_idle(), limit)
        elapsed = time.perf_counter() - started
        status = dispatcher.status()["whatsapp"]
        counts = await runner.call(runner.store.counts)
    finally:
        watcher.cancel()
        await channel.aclose()
        runner.close()
    sent = sum(n for (_, state), n in counts.items() if state == "sent")
    return Sweep(
        0.0,
        sustained(channel.answers),
        count / elapsed,
        status.in_flight_target,
        status.latency,
        peak,
        sent,
        0.0,
    )


async def one_latency(base_url: str, latency: float, args: argparse.Namespace, db: str) -> Sweep:
    """Warm up, nextstep, then the bare loop at nextstep's settled target."""
    await asyncio.wait_for(st.run_bare(base_url, 500, 100), args.timeout)
    st._queue(db, args.count)
    result = await run_nextstep(base_url, db, args.count, args.timeout, args.max_in_flight)
    result.latency = latency
    seconds, _ = await asyncio.wait_for(
        st.run_bare(base_url, args.count, result.target), args.timeout
    )
    # The bare loop has no rate limit: its figure is what this concurrency can carry.
    result.bare = args.count / seconds
    return result


def with_sandbox(latency: float, args: argparse.Namespace, folder: str) -> Sweep:
    """Start a sandbox answering in ``latency`` seconds, measure, stop it."""
    command = [sys.executable, st.__file__, "--serve-sandbox", "--latency", str(latency)]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as sandbox:
        assert sandbox.stdout is not None and sandbox.stdin is not None
        line = sandbox.stdout.readline()
        if not line.startswith("URL "):
            raise SystemExit(f"the sandbox did not start: {line!r}")
        try:
            db = str(Path(folder) / f"ledger-{latency}.db")
            return asyncio.run(one_latency(line.split()[1], latency, args, db))
        finally:
            sandbox.stdin.close()
            sandbox.wait(timeout=30)


def main() -> None:
    """Sweep the latencies and print each figure beside the target and the bare loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--latencies", default="0.05,0.3,1,2", help="seconds, comma-separated")
    parser.add_argument("--timeout", type=float, default=120.0, help="per phase, seconds")
    parser.add_argument(
        "--max-in-flight", type=int, help="set max_in_flight (default: leave it at its default)"
    )
    args = parser.parse_args()
    latencies = [float(x) for x in args.latencies.split(",")]
    st.prepare_process()
    from nextstep.engine.runtime.gctune import tuned_gc

    print(
        f"latency_sweep: rate {RATE}, "
        + (
            "default settings"
            if args.max_in_flight is None
            else f"max_in_flight {args.max_in_flight}"
        )
        + f" otherwise, {args.count:,} messages per "
        f"latency, {os.cpu_count()} cores (sandbox in its own process)"
    )
    print(
        "  latency   nextstep msg/s (end to end)   target   in flight: target / peak / "
        "measured latency   bare loop at that concurrency"
    )
    results = []
    with tempfile.TemporaryDirectory() as folder, tuned_gc():
        for latency in latencies:
            r = with_sandbox(latency, args, folder)
            results.append(r)
            measured = "-" if r.measured_latency is None else f"{r.measured_latency * 1000:.0f} ms"
            ok = r.sustained >= TARGET and r.sent == args.count
            print(
                f"  {latency * 1000:5.0f} ms  {r.sustained:8,.0f} ({r.end_to_end:5,.0f})"
                f"{'':14}>= {TARGET:.0f} {'ok' if ok else 'MISSED'}"
                f"   {r.target:5} / {r.peak_in_flight:5} / {measured:>7}"
                f"   {r.bare:8,.0f} msg/s  (all sent: {r.sent == args.count})",
                flush=True,
            )
    every = all(r.sustained >= TARGET and r.sent == args.count for r in results)
    print(f"  target >= {TARGET:.0f} msg/s at every latency: " + ("ok" if every else "MISSED"))


if __name__ == "__main__":
    main()
