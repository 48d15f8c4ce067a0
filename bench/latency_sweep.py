"""Does a channel reach its configured rate whatever the provider's latency? A sweep.

For each sandbox latency (50 ms, 300 ms, 1 s, 2 s by default) a fresh sandbox process (the
1MSG-compatible API on loopback, its rate limit lifted, acks off) answers:

* nextstep: a fresh SQLite ledger of ``--count`` queued notifications, the real 1MSG channel
  and the dispatcher with DEFAULT settings but ``rate: 1000/s`` (``max_in_flight``, the
  connection pool and the concurrency controller as shipped), until every one is recorded;
* bare: an aiohttp loop posting the same bodies with as many workers as the in-flight target
  nextstep settled at (no rate limit, nothing recorded): what the machine and the sandbox
  serve at that concurrency.

msg/s is the sustained rate, for both: answers between the 10th and the 90th percentile of
answer times (the first round trip fills the pipeline once, the last drains it: neither is
throughput). So that this window is the steady state at long latencies too, each latency sends
at least ``rate × (6 s + 5 × latency)`` messages (16,000 at 2 s, where 6,000 made the fill
and drain a third of the run). End to end (count over the whole run, fill and drain included)
is printed beside it.

CPU µs/msg is the CPU this process (dispatcher, ledger thread, channel; or the bare loop)
used per message, from ``resource.getrusage``: on a shared machine it says more than msg/s.
"conns" is the most file descriptors this process held open at once, sampled 4 times a
second: nearly all are the channel's connection pool (each request in flight holds one;
answered ones are reused, not reopened), and "load" the
1-minute load average after the latency's runs.

    .venv/bin/python bench/latency_sweep.py [--count 6000] [--latencies 0.05,0.3,1,2]

Target: >= 950 msg/s at every latency. Bounded: fixed counts, each phase under ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
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
    bare: float = 0.0
    cpu: float = 0.0  # CPU seconds per message, this process (dispatcher, ledger, channel)
    bare_cpu: float = 0.0  # CPU seconds per message of the bare loop
    connections: int = 0  # most descriptors open at once while nextstep sent
    count: int = 0  # messages sent at this latency


def cpu_now() -> float:
    """User + system CPU seconds of this process (every thread) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def files_open() -> int:
    """File descriptors this process holds open now (Linux): the channel's sockets, a few
    more. Cheap enough to sample while sending (no readlink per descriptor)."""
    return len(os.listdir("/proc/self/fd"))


def messages_for(latency: float, least: int, rate: float = 1000.0) -> int:
    """Messages to send at ``latency``: enough that the 10-90 % window of answers is the
    steady state (``rate × (6 s + 5 × latency)``), and at least ``least``."""
    return max(least, int(rate * (6.0 + 5.0 * latency)))


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
    peak = sockets = 0

    async def watch() -> None:
        nonlocal peak, sockets
        while True:
            peak = max(peak, dispatcher.status()["whatsapp"].in_flight)
            if int(time.perf_counter() * 20) % 5 == 0:  # every fourth look: 4 a second
                sockets = max(sockets, files_open())
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        started, cpu = time.perf_counter(), cpu_now()
        await asyncio.wait_for(dispatcher.run_until_idle(), limit)
        elapsed, cpu = time.perf_counter() - started, cpu_now() - cpu
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
        cpu=cpu / count,
        connections=sockets,
        count=count,
    )


async def run_bare(base_url: str, count: int, concurrency: int) -> tuple[list[float], float]:
    """``st.run_bare``'s loop (``concurrency`` workers posting sendTemplate, no rate limit,
    nothing recorded), noting when each answer came; (answer times, CPU seconds)."""
    import aiohttp
    import orjson

    from nextstep.adapters.channels.onemsg.payload import send_template_body
    from nextstep.engine.model import Message

    bodies = [
        orjson.dumps(send_template_body(Message("whatsapp", st.phone(i), st.FIELDS)))
        for i in range(count)
    ]
    bodies.reverse()
    url = f"{base_url}/{st.INSTANCE}/sendTemplate"
    headers = {"Authorization": f"Bearer {st.TOKEN}", "Content-Type": "application/json"}
    answers: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while bodies:
                body = bodies.pop()
                async with session.post(url, data=body, headers=headers) as response:
                    orjson.loads(await response.read())
                    answers.append(time.perf_counter())

        cpu = cpu_now()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return answers, cpu_now() - cpu


async def one_latency(base_url: str, latency: float, args: argparse.Namespace, db: str) -> Sweep:
    """Warm up, nextstep, then the bare loop at nextstep's settled target."""
    await asyncio.wait_for(st.run_bare(base_url, 500, 100), args.timeout)
    count = messages_for(latency, args.count)
    st._queue(db, count)
    result = await run_nextstep(base_url, db, count, args.timeout, args.max_in_flight)
    result.latency = latency
    answers, cpu = await asyncio.wait_for(run_bare(base_url, count, result.target), args.timeout)
    # The bare loop has no rate limit: its figure is what this concurrency can carry.
    result.bare, result.bare_cpu = sustained(answers), cpu / count
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
        + f" otherwise, at least {args.count:,} messages per "
        f"latency, {os.cpu_count()} cores (sandbox in its own process); "
        f"load avg {os.getloadavg()[0]:.1f} before"
    )
    print(
        "  latency   nextstep msg/s (end to end)   target   in flight: target / peak / "
        "measured latency   conns  CPU µs/msg   bare loop at that concurrency (CPU µs/msg)"
    )
    results = []
    with tempfile.TemporaryDirectory() as folder, tuned_gc():
        for latency in latencies:
            r = with_sandbox(latency, args, folder)
            results.append(r)
            measured = "-" if r.measured_latency is None else f"{r.measured_latency * 1000:.0f} ms"
            ok = r.sustained >= TARGET and r.sent == r.count
            print(
                f"  {latency * 1000:5.0f} ms  {r.sustained:8,.0f} ({r.end_to_end:5,.0f})"
                f"{'':14}>= {TARGET:.0f} {'ok' if ok else 'MISSED'}"
                f"   {r.target:5} / {r.peak_in_flight:5} / {measured:>7}"
                f"   {r.connections:5}  {r.cpu * 1e6:9.0f}"
                f"   {r.bare:8,.0f} msg/s ({r.bare_cpu * 1e6:4.0f})"
                f"   n={r.count:,}, all sent: {r.sent == r.count},"
                f" load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    every = all(r.sustained >= TARGET and r.sent == r.count for r in results)
    print(f"  target >= {TARGET:.0f} msg/s at every latency: " + ("ok" if every else "MISSED"))


if __name__ == "__main__":
    main()
