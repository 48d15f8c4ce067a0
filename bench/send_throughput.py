"""Messages sent per second by nextstep's dispatcher, beside a bare aiohttp loop.

A sandbox process (the 1MSG-compatible API on loopback, 100 ms latency on every answer, its
rate limit lifted, acks off) serves both runs, so the two cores are shared the same way:

* nextstep: a fresh SQLite ledger holding ``--count`` queued notifications, the real 1MSG
  channel, the dispatcher leasing, sending and recording every outcome until none is left;
* bare: ``--concurrency`` aiohttp workers posting the same request bodies, nothing recorded;
* for reference, the 1MSG channel adapter alone (``channel.send`` from as many workers).

    .venv/bin/python bench/send_throughput.py [--count 20000] [--concurrency 256]
    .venv/bin/python bench/send_throughput.py --ingest [--count 10000] [--concurrency 300]

``--ingest`` instead times the end-to-end ``nextstep ingest`` command (a fresh process: start-up,
the CSV read through the rules into a fresh ledger, then every notification sent with
``max_in_flight`` and ``max_connections`` at ``--concurrency``) on a ``--count``-row CSV, beside
the bare loop at the same concurrency, in the same run (target: >= 0.9 x the bare loop), with
the command's CPU per row (every thread, start-up included) beside the bare loop's per message.
The command runs as installed: with its bytecode cached (a warm-up run writes it).

Each of ``--rounds`` rounds runs the three in turn (the machine's other load varies; the best
of each is compared). Bounded: a fixed number of messages, every phase under ``--timeout``
seconds, the sandbox stopped at the end. Target: at least 1,000 msg/s and at least 0.7 x the
bare loop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "sandbox-token"
INSTANCE = "bench"
TARGET_RATE = 1000.0
TARGET_RATIO = 0.7
FIELDS = {
    "template": "next_step",
    "namespace": "3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de",
    "language": "en",
    "params": ["Maria", "loan application #12345", "upload documents by June 20"],
    "text": "Hello, Maria!",
}


def phone(i: int) -> str:
    """Distinct numbers that end in 77: no sandbox failure script matches them."""
    return f"346{i:06d}77"


# -- the sandbox process --------------------------------------------------------------------
def serve_sandbox(latency: float) -> None:
    """Serve the sandbox until stdin closes; prints ``URL <base_url>`` once listening."""
    from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
    from nextstep.adapters.channels.onemsg.sandbox.server import serving

    async def main() -> None:
        config = SandboxConfig(token=TOKEN, latency=latency, acks=False, rate_limit=None)
        async with serving(config) as running:
            print(f"URL {running.base_url}", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


# -- nextstep -------------------------------------------------------------------------------
def _queue(db: str, count: int) -> None:
    from nextstep.engine.ledger.base import NewNotification
    from nextstep.engine.ledger.sqlite import SqliteStore

    store = SqliteStore(db)
    now = time.time()
    items = [
        NewNotification("bench", "v1", "whatsapp", phone(i), FIELDS, {"i": i}, now)
        for i in range(count)
    ]
    store.enqueue(items)
    store.close()


async def run_nextstep(base_url: str, db: str, concurrency: int) -> tuple[float, dict[str, int]]:
    """Send everything queued in ``db``; (seconds taken, notifications by state)."""
    from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
    from nextstep.engine.clock import SystemClock
    from nextstep.engine.ledger import open_store
    from nextstep.engine.ledger.runner import LedgerRunner
    from nextstep.engine.rules.rule import RetryPolicy
    from nextstep.engine.sending.dispatcher import Dispatcher
    from nextstep.engine.sending.ratelimit import ChannelLimits

    clock = SystemClock()
    settings = {"base_url": base_url, "instance_id": INSTANCE, "token": TOKEN}
    channel = OneMsgChannel("whatsapp", {**settings, "max_connections": concurrency}, clock=clock)
    runner = LedgerRunner(open_store(f"sqlite:///{db}"))
    limits = ChannelLimits(rate=1_000_000, max_in_flight=concurrency)
    policy = RetryPolicy()
    dispatcher = Dispatcher(
        runner, {"whatsapp": channel}, lambda _n: policy, clock, {"whatsapp": limits}
    )
    try:
        started = time.perf_counter()
        await dispatcher.run_until_idle()
        elapsed = time.perf_counter() - started
        counts = await runner.call(runner.store.counts)
    finally:
        await channel.aclose()
        runner.close()
    return elapsed, {state: n for (_, state), n in counts.items()}


# -- the bare loop --------------------------------------------------------------------------
async def run_bare(base_url: str, count: int, concurrency: int) -> tuple[float, int]:
    """Post ``count`` sendTemplate bodies with ``concurrency`` workers; (seconds, accepted)."""
    from nextstep.adapters.channels.onemsg.payload import send_template_body
    from nextstep.engine.model import Message

    bodies = [
        orjson.dumps(send_template_body(Message("whatsapp", phone(i), FIELDS)))
        for i in range(count)
    ]
    bodies.reverse()
    url = f"{base_url}/{INSTANCE}/sendTemplate"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    accepted = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal accepted
            while bodies:
                body = bodies.pop()
                async with session.post(url, data=body, headers=headers) as response:
                    answer = orjson.loads(await response.read())
                    accepted += bool(response.status == 200 and answer.get("sent"))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, accepted


# -- the 1MSG channel alone ---------------------------------------------------------------
async def run_channel(base_url: str, count: int, concurrency: int) -> float:
    """``channel.send`` from ``concurrency`` workers, no ledger: what the adapter costs."""
    from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
    from nextstep.engine.clock import SystemClock
    from nextstep.engine.model import Message

    settings = {"base_url": base_url, "instance_id": INSTANCE, "token": TOKEN}
    channel = OneMsgChannel(
        "whatsapp", {**settings, "max_connections": concurrency}, clock=SystemClock()
    )
    messages = [Message("whatsapp", phone(i), FIELDS) for i in range(count)]
    messages.reverse()

    async def worker() -> None:
        while messages:
            await channel.send(messages.pop())

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started
    finally:
        await channel.aclose()


# -- nextstep ingest, end to end ----------------------------------------------------------
INGEST_RULE = """\
rules:
  - id: bench
    trigger:
      csv: {path: "inbox/*.csv"}
    to: "{{ event.phone }}"
    send:
      channel: whatsapp
      template: next_step
      namespace: 3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de
      language: en
      text: 'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>'
      params:
        1: "{{ event.name | title }}"
        2: "loan application #{{ event.application }}"
        3: "upload documents by June 20"
"""
INGEST_TARGET = 0.9


def ingest_folder(folder: Path, base_url: str, count: int, concurrency: int, run: int) -> Path:
    """A configuration, a rule and a ``count``-row CSV for ``nextstep ingest``; the CSV."""
    work = folder / f"ingest{run}"
    (work / "rules").mkdir(parents=True)
    (work / "nextstep.yaml").write_text(
        "store: sqlite:///ledger.db\nrules: rules/\nchannels:\n"
        f"  whatsapp: {{type: 1msg, base_url: '{base_url}', instance_id: {INSTANCE}, "
        f"token: {TOKEN}, rate: 1000000/s, max_in_flight: {concurrency}, "
        f"max_connections: {concurrency}}}\n"
    )
    (work / "rules" / "bench.yaml").write_text(INGEST_RULE)
    path = work / "export.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("name;application;phone\n")
        f.writelines(f"maria;{100000 + i};+{phone(i)}\n" for i in range(count))
    return path


def installed_env(folder: Path) -> dict[str, str]:
    """The environment of an installed nextstep: bytecode cached (pip compiles it at install;
    a checkout run with PYTHONDONTWRITEBYTECODE would compile every module at each start)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


def children_cpu() -> float:
    """CPU time of the child processes waited for so far (the sandbox runs to the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ingest_command(
    csv_path: Path, limit: float, env: dict[str, str]
) -> tuple[float, str, float]:
    """Wall seconds of ``nextstep ingest`` (process start to exit), its output and its CPU
    seconds (every thread, start-up included)."""
    folder = csv_path.parent
    command = [sys.executable, "-m", "nextstep", "ingest", str(csv_path), "--rule", "bench"]
    command += ["-c", str(folder / "nextstep.yaml")]
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=limit, cwd=folder, env=env
    )
    seconds = time.perf_counter() - started
    cpu = children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"nextstep ingest failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return seconds, done.stdout, cpu


async def measure_ingest(base_url: str, args: argparse.Namespace, folder: str) -> None:
    """Bare loop, then ``nextstep ingest`` end to end, each round; the best of each."""
    count, concurrency = args.count, args.concurrency
    await asyncio.wait_for(run_bare(base_url, min(2000, count), concurrency), args.timeout)
    print(
        f"send_throughput --ingest: {count:,}-row CSV, {concurrency} in flight both sides, "
        f"sandbox latency {args.latency * 1000:.0f} ms, {os.cpu_count()} cores, best of "
        f"{args.rounds} rounds"
    )
    env = installed_env(Path(folder))
    # Warm-up: a 10-row file, so that the bytecode cache is written before the timed runs.
    warm = ingest_folder(Path(folder), base_url, 10, concurrency, -1)
    await asyncio.to_thread(run_ingest_command, warm, args.timeout, env)
    bares, ours = [], []
    for i in range(args.rounds):
        bare_cpu = cpu_seconds()
        seconds, accepted = await asyncio.wait_for(
            run_bare(base_url, count, concurrency), args.timeout
        )
        bare_cpu = cpu_seconds() - bare_cpu
        bares.append(count / seconds)
        csv_path = ingest_folder(Path(folder), base_url, count, concurrency, i)
        wall, output, cpu = await asyncio.to_thread(run_ingest_command, csv_path, args.timeout, env)
        ours.append(count / wall)
        sent = f"sent {count:,}" in output
        print(
            f"  round {i + 1}: bare {bares[-1]:,.0f} msg/s ({accepted:,} accepted; "
            f"{bare_cpu / count * 1e6:.0f} µs CPU/msg)  "
            f"nextstep ingest {ours[-1]:,.0f} msg/s ({wall:.2f} s wall incl. start-up; "
            f"all sent: {sent}; {cpu / count * 1e6:.0f} µs CPU/row)  "
            f"ratio {ours[-1] / bares[-1]:.2f}",
            flush=True,
        )
    ratio = max(ours) / max(bares)
    print(f"  best: bare {max(bares):,.0f} msg/s, nextstep ingest {max(ours):,.0f} msg/s")
    print(
        f"  ratio {ratio:.2f}; target >= {INGEST_TARGET} x bare: "
        + ("ok" if ratio >= INGEST_TARGET else "MISSED")
    )


# -- the run --------------------------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (the ledger's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    """One measured run: messages per second and this process's CPU per message."""

    rate: float
    cpu_us: float


@dataclass
class Round:
    """One round of the three runs."""

    bare: Run
    channel: Run
    nextstep: Run
    states: dict[str, int]


async def timed(count: int, limit: float, work: Awaitable[float]) -> Run:
    """Run ``work`` (which returns the seconds it sent for) and measure it."""
    cpu = cpu_seconds()
    seconds = await asyncio.wait_for(work, limit)
    return Run(count / seconds, (cpu_seconds() - cpu) / count * 1e6)


async def _seconds(work: Awaitable[tuple[float, Any]]) -> float:
    return (await work)[0]


async def one_round(base_url: str, args: argparse.Namespace, db: str) -> Round:
    """Bare loop, channel alone, then nextstep over a freshly queued ledger."""
    count, concurrency, limit = args.count, args.concurrency, args.timeout
    bare = await timed(count, limit, _seconds(run_bare(base_url, count, concurrency)))
    channel = await timed(count, limit, run_channel(base_url, count, concurrency))
    _queue(db, count)
    states: dict[str, int] = {}

    async def ours() -> float:
        seconds, found = await run_nextstep(base_url, db, concurrency)
        states.update(found)
        return seconds

    return Round(bare, channel, await timed(count, limit, ours()), states)


async def measure(base_url: str, args: argparse.Namespace, folder: str) -> None:
    """Warm up, run the rounds, print each and the best of each against the target."""
    count = args.count
    # Warm up: connections, and the sandbox's code paths.
    await asyncio.wait_for(run_bare(base_url, min(2000, count), args.concurrency), args.timeout)
    print(
        f"send_throughput: {count:,} messages per run, concurrency {args.concurrency}, sandbox "
        f"latency {args.latency * 1000:.0f} ms, {os.cpu_count()} cores (sandbox in its own "
        f"process), best of {args.rounds} rounds"
    )
    rounds = []
    for i in range(args.rounds):
        r = await one_round(base_url, args, str(Path(folder) / f"ledger{i}.db"))
        rounds.append(r)
        print(
            f"  round {i + 1}: bare {r.bare.rate:,.0f}  channel {r.channel.rate:,.0f}  "
            f"nextstep {r.nextstep.rate:,.0f} msg/s  (ratio {r.nextstep.rate / r.bare.rate:.2f})"
        )
    bare = max((r.bare for r in rounds), key=lambda run: run.rate)
    channel = max((r.channel for r in rounds), key=lambda run: run.rate)
    ours = max((r.nextstep for r in rounds), key=lambda run: run.rate)
    all_sent = all(r.states.get("sent") == count for r in rounds)
    ratio = ours.rate / bare.rate
    ok = ours.rate >= TARGET_RATE and ratio >= TARGET_RATIO and all_sent
    print("  best of each; CPU per message is this process's, every thread:")
    print(f"  bare aiohttp loop:        {bare.rate:7,.0f} msg/s  {bare.cpu_us:5.0f} µs CPU/msg")
    print(
        f"  1MSG channel, no ledger:  {channel.rate:7,.0f} msg/s  {channel.cpu_us:5.0f} µs CPU/msg"
        "  (the adapter alone)"
    )
    print(
        f"  nextstep (SQLite ledger): {ours.rate:7,.0f} msg/s  {ours.cpu_us:5.0f} µs CPU/msg"
        f"  (all sent: {all_sent})"
    )
    per_round = sorted(r.nextstep.rate / r.bare.rate for r in rounds)
    print(
        f"  ratio nextstep / bare:    {ratio:7.2f}  (per round: min {per_round[0]:.2f}, "
        f"median {statistics.median(per_round):.2f})"
    )
    print(
        f"  target: >= {TARGET_RATE:,.0f} msg/s and >= {TARGET_RATIO} x bare: "
        + ("ok" if ok else "MISSED")
    )


def prepare_process() -> None:
    """Import what the three runs use, before the collector is tuned for them (the daemon
    tunes it after start-up too)."""
    for module in (
        "nextstep.adapters.channels.onemsg.channel",
        "nextstep.engine.sending.dispatcher",
        "nextstep.engine.ledger.sqlite",
        "nextstep.engine.rules.rule",
    ):
        importlib.import_module(module)


def main() -> None:
    """Start the sandbox process, measure, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help="messages (20,000; --ingest: 10,000 rows)")
    parser.add_argument("--concurrency", type=int, help="in flight (256; --ingest: 300)")
    parser.add_argument("--latency", type=float, default=0.1, help="sandbox latency, seconds")
    parser.add_argument("--timeout", type=float, default=300.0, help="per phase, seconds")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the best of each counts")
    parser.add_argument("--ingest", action="store_true", help="time `nextstep ingest` instead")
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count is None:
        args.count = 10_000 if args.ingest else 20_000
    if args.concurrency is None:
        args.concurrency = 300 if args.ingest else 256
    if args.serve_sandbox:
        serve_sandbox(args.latency)
        return
    command = [sys.executable, __file__, "--serve-sandbox", "--latency", str(args.latency)]
    with (
        tempfile.TemporaryDirectory() as folder,
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as sandbox,
    ):
        assert sandbox.stdout is not None and sandbox.stdin is not None
        line = sandbox.stdout.readline()
        if not line.startswith("URL "):
            raise SystemExit(f"the sandbox did not start: {line!r}")
        prepare_process()
        from nextstep.engine.runtime.gctune import tuned_gc

        try:
            # All three runs alike (the bare loop included), as the daemon after start-up.
            with tuned_gc():
                work = measure_ingest if args.ingest else measure
                asyncio.run(work(line.split()[1], args, folder))
        finally:
            sandbox.stdin.close()
            sandbox.wait(timeout=30)


if __name__ == "__main__":
    main()
