"""Messages per second with 1, 2 and 3 ``nextstep run`` workers sharing one PostgreSQL ledger,
and one PostgreSQL worker beside one SQLite worker, in one run.

A sandbox process (the 1MSG-compatible API on loopback, 200 ms latency on every answer, its rate
limit lifted, acks off) serves every run. Each run starts its workers as subprocesses (the real
``nextstep run``, one nextstep.yaml each: the same ledger, rules and channel, its own server
port), waits until every one serves ``/healthz`` (so each has done its start-up recovery), then
queues ``--count`` notifications per worker straight into the ledger (the rows a trigger would
write) and waits until all are sent. The channel's in-flight cap is 50 per worker and its rate
1000/s per worker (it never binds: 50 requests of 200 ms make 250/s), so one worker's ceiling
is 250 msg/s and N workers' N x 250.

    .venv/bin/python bench/scale_out.py [--count 2500] [--rounds 1] [--postgres URL]

msg/s is ``sent / (last result - first result + latency)``, from the ledger's own times (each
sent row's ``updated_at`` is when its result was recorded): waves of 50 results 200 ms apart
give exactly 50 / 0.2 s, and neither the workers' idle poll (1 s) nor this script's polling is
counted. Each run also counts the sends the sandbox accepted (its own counter): equal to the
ledger's sent rows, nothing was sent twice. PostgreSQL runs get a fresh database each
(``nextstep_bench_<random>_<run>``, created from ``--postgres`` and dropped at the end); the
SQLite run a fresh file. Targets: 3 workers at
least 2.5 x one, and one PostgreSQL worker at least 0.8 x one SQLite worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "sandbox-token"
INSTANCE = "bench"
IN_FLIGHT = 50
LEASE = 3  # seconds: a short lease, so that joining workers send within a second or two
RATE = 1000  # per worker's channel: above 50 in flight / 200 ms, so it never binds
TARGET_SCALE = 2.5
TARGET_BACKENDS = 0.8
RULE = "bench-next-step"


def phone(i: int) -> str:
    """Distinct numbers that end in 77: no sandbox failure script matches them."""
    return f"346{i:06d}77"


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` used so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_times() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, every core (Linux ``/proc/stat``)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0, 0.0
    ticks = [int(v) for v in first[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return float(sum(ticks) - idle), float(sum(ticks))


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


@dataclass
class Sandbox:
    """The sandbox process: its base URL and pid."""

    base_url: str
    pid: int

    def accepted(self) -> int:
        """How many sends the sandbox accepted so far (its own counter)."""
        stats = httpx.get(
            f"{self.base_url}/_sandbox/{INSTANCE}/stats", params={"token": TOKEN}, timeout=10
        ).json()
        return int(stats["accepted"])


@contextlib.contextmanager
def sandbox_process(latency: float) -> Iterator[Sandbox]:
    """The sandbox in its own process."""
    command = [sys.executable, __file__, "--serve-sandbox", "--latency", str(latency)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as sb:
        assert sb.stdout is not None and sb.stdin is not None
        line = sb.stdout.readline()
        if not line.startswith("URL "):
            raise SystemExit(f"the sandbox did not start: {line!r}")
        try:
            yield Sandbox(line.split()[1], sb.pid)
        finally:
            sb.stdin.close()
            sb.wait(timeout=30)


# -- ledgers --------------------------------------------------------------------------------
@contextlib.contextmanager
def postgres_database(admin: str, label: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run (dropped at the end); yields its URL."""
    import psycopg

    name = f"nextstep_bench_{secrets.token_hex(4)}_{label}"
    url = admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- workers --------------------------------------------------------------------------------
def free_port() -> int:
    """A port nothing listens on now (the worker binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_workspace(folder: Path, store: str, sandbox_url: str, ports: list[int]) -> list[Path]:
    """rules/ and one nextstep.yaml per worker (only the port differs); their paths."""
    from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE

    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "bench.yaml").write_text(
        textwrap.dedent(
            f"""\
            rules:
              - id: {RULE}
                trigger:
                  http: {{path: /events/bench}}
                to: "{{{{ event.phone }}}}"
                send:
                  channel: whatsapp
                  template: next_step
                  namespace: {NAMESPACE}
                  language: en
                  text: 'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>'
                  params:
                    1: "{{{{ event.name }}}}"
                    2: "loan application"
                    3: "upload documents"
            """
        ),
        encoding="utf-8",
    )
    configs = []
    for i, port in enumerate(ports):
        config = folder / f"worker{i + 1}.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                store: "{store}"
                rules: rules/
                default_country: ES
                server:
                  listen: 127.0.0.1:{port}
                  event_token: bench-event-token-0123456789
                  webhook_secret: bench-webhook-secret-0123456789
                status:
                  poll_after: 1h
                  poll_every: 1h
                workers:
                  lease: {LEASE}s
                channels:
                  whatsapp:
                    type: 1msg
                    base_url: {sandbox_url}
                    instance_id: {INSTANCE}
                    token: {TOKEN}
                    rate: {RATE}/s
                    max_in_flight: {IN_FLIGHT}
                """
            ),
            encoding="utf-8",
        )
        configs.append(config)
    return configs


@dataclass
class Worker:
    """One ``nextstep run`` subprocess and its server's port."""

    process: subprocess.Popen[bytes]
    port: int

    def sent(self) -> int:
        """How many notifications this worker sent (its ``/metrics``)."""
        metrics = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        wanted = f'nextstep_notifications_total{{rule="{RULE}",state="sent"}}'
        found = [line.split()[-1] for line in metrics.splitlines() if line.startswith(wanted)]
        return int(float(found[0])) if found else 0

    def cpu_seconds(self) -> float:
        """CPU time the worker used so far (Linux ``/proc``; 0 elsewhere)."""
        return cpu_seconds(self.process.pid)


@contextlib.contextmanager
def workers(configs: list[Path], ports: list[int], timeout: float) -> Iterator[list[Worker]]:
    """``nextstep run`` per config; yields once every one serves ``/healthz``; stops them with
    SIGTERM (the daemon's clean stop) at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for config in configs:
            log = config.with_suffix(".log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "nextstep", "run", "-c", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=config.parent,
                )
            )
            log.close()
        deadline = time.monotonic() + timeout
        for process, port, config in zip(processes, ports, configs, strict=True):
            while not _serves(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    log = config.with_suffix(".log").read_text(errors="replace")
                    raise SystemExit(f"worker {config.name} did not start:\n{log[-3000:]}")
                time.sleep(0.05)
        yield [Worker(process, port) for process, port in zip(processes, ports, strict=True)]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serves(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -- one run --------------------------------------------------------------------------------
@dataclass
class Result:
    """One run: messages per second, how many were sent (and left open), each worker's share,
    the workers' CPU time per message."""

    rate: float
    sent: int
    queued: int
    shares: tuple[int, ...] = ()
    cpu_us: float = 0.0
    sandbox_cpu_us: float = 0.0
    machine_busy: float = 0.0  # share of every core's time busy during the run (anyone's work)
    accepted: int = 0  # sendTemplate calls the sandbox accepted during the run


def enqueue(store_url: str, config: Path, count: int) -> None:
    """``count`` notifications of the bench rule, as its trigger would write them."""
    from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
    from nextstep.engine.ledger import open_store
    from nextstep.engine.ledger.base import NewNotification
    from nextstep.engine.rules.config import load_config

    rule = load_config(config).rules[RULE]
    store = open_store(store_url)
    now = time.time()
    try:
        for start in range(0, count, 1000):
            store.enqueue(
                [
                    NewNotification(
                        RULE,
                        rule.version,
                        "whatsapp",
                        phone(i),
                        {
                            "template": "next_step",
                            "namespace": NAMESPACE,
                            "language": "en",
                            "params": ["Maria", "loan application", "upload documents"],
                            "text": "Hello!",
                        },
                        {"phone": phone(i), "name": "Maria"},
                        now,
                    )
                    for i in range(start, min(count, start + 1000))
                ]
            )
    finally:
        store.close()


def wait_sent(store_url: str, count: int, latency: float, timeout: float) -> Result:
    """Wait until nothing is queued or sending; the rate from the sent rows' times."""
    from nextstep.engine.ledger import open_store
    from nextstep.engine.model import State

    store = open_store(store_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            counts = {state: n for (_, state), n in store.counts().items()}
            open_rows = counts.get(State.QUEUED, 0) + counts.get(State.SENDING, 0)
            if not open_rows or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        sent = store.list(state=State.SENT, limit=count)
        times = sorted(n.updated_at for n in sent)
        span = times[-1] - times[0] + latency if times else float("inf")
        return Result(len(sent) / span, len(sent), open_rows)
    finally:
        store.close()


def one_run(
    store_url: str, folder: Path, sandbox: Sandbox, n: int, args: argparse.Namespace
) -> Result:
    """``n`` workers on ``store_url`` send ``n * args.count`` notifications."""
    ports = [free_port() for _ in range(n)]
    configs = write_workspace(folder, store_url, sandbox.base_url, ports)
    count = n * args.count
    with workers(configs, ports, args.timeout) as running:
        # A worker joining others holds back one heartbeat (a third of the lease) so that they
        # lower their rate share first: measure once every worker sends.
        time.sleep(LEASE / 3 + 1.0)
        cpu = sum(w.cpu_seconds() for w in running)
        sandbox_cpu = cpu_seconds(sandbox.pid)
        busy, total = machine_times()
        accepted = sandbox.accepted()
        enqueue(store_url, configs[0], count)
        result = wait_sent(store_url, count, args.latency, args.timeout)
        cpu = sum(w.cpu_seconds() for w in running) - cpu
        sandbox_cpu = cpu_seconds(sandbox.pid) - sandbox_cpu
        busy_after, total_after = machine_times()
        accepted = sandbox.accepted() - accepted
        shares = tuple(w.sent() for w in running)
    per_message = 1e6 / count
    return Result(
        result.rate,
        result.sent,
        result.queued,
        shares,
        cpu * per_message,
        sandbox_cpu * per_message,
        (busy_after - busy) / max(total_after - total, 1.0),
        accepted,
    )


def main() -> None:
    """Start the sandbox, run every configuration, print the figures and the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2500, help="notifications per worker")
    parser.add_argument("--latency", type=float, default=0.2, help="sandbox latency, seconds")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, seconds")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the best of each counts")
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.latency)
        return
    ceiling = IN_FLIGHT / args.latency
    print(
        f"scale_out: {args.count:,} notifications per worker, sandbox latency "
        f"{args.latency * 1000:.0f} ms, in-flight cap {IN_FLIGHT} and rate {RATE}/s per worker "
        f"(ceiling {ceiling:,.0f} msg/s per worker), {os.cpu_count()} cores shared by the "
        "workers, the sandbox and the database (load average now "
        f"{os.getloadavg()[0]:.1f})",
        flush=True,
    )
    best: dict[str, Result] = {}
    everything_sent = True
    with sandbox_process(args.latency) as sandbox, tempfile.TemporaryDirectory() as tmp:
        for round_number in range(1, args.rounds + 1):
            for backend, n in RUNS:
                label = f"{backend}{n}"
                result = measured(backend, n, Path(tmp) / f"{label}-{round_number}", sandbox, args)
                expected = n * args.count
                everything_sent &= result.sent == result.accepted == expected and not result.queued
                if label not in best or result.rate > best[label].rate:
                    best[label] = result
                print(f"  {round_number}. {describe(backend, n, result, ceiling)}", flush=True)
    summarise(best, everything_sent, args.rounds)


RUNS = [("postgresql", 1), ("postgresql", 2), ("postgresql", 3), ("sqlite", 1)]


def measured(
    backend: str, n: int, folder: Path, sandbox: Sandbox, args: argparse.Namespace
) -> Result:
    """One run of ``n`` workers on a fresh ledger of ``backend``."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            store_url = f"sqlite:///{folder / 'ledger.db'}"
        else:
            label = f"{backend}{n}_{folder.name.rsplit('-', 1)[-1]}"
            store_url = stack.enter_context(postgres_database(args.postgres, label))
        return one_run(store_url, folder, sandbox, n, args)


def describe(backend: str, n: int, result: Result, ceiling: float) -> str:
    """One run's line."""
    workers_text = f"{n} worker{'s' if n > 1 else ''}"
    return (
        f"{backend + ',':<11} {workers_text:<9} {result.rate:7,.0f} msg/s  "
        f"({result.rate / (n * ceiling):.0%} of the ceiling; {result.sent:,} sent, "
        f"{result.accepted:,} accepted by the sandbox, {result.queued} left open; "
        f"by worker {'/'.join(map(str, result.shares))}; "
        f"CPU µs/msg: workers {result.cpu_us:,.0f}, sandbox {result.sandbox_cpu_us:,.0f}; "
        f"machine busy {result.machine_busy:.0%})"
    )


def summarise(best: dict[str, Result], everything_sent: bool, rounds: int) -> None:
    """The best of each configuration, the ratios and the targets."""
    one, two, three = (best[f"postgresql{n}"].rate for n in (1, 2, 3))
    sqlite = best["sqlite1"].rate
    print(f"  best of {rounds} round{'s' if rounds > 1 else ''}, msg/s:")
    print(f"    PostgreSQL 1 / 2 / 3 workers:   {one:,.0f} / {two:,.0f} / {three:,.0f}")
    print(f"    SQLite, 1 worker:               {sqlite:,.0f}")
    print(f"  2 workers / 1 worker:             {two / one:5.2f} x")
    scale, backends = three / one, one / sqlite
    verdict = "ok" if scale >= TARGET_SCALE and everything_sent else "MISSED"
    print(
        f"  3 workers / 1 worker:             {scale:5.2f} x  (target >= {TARGET_SCALE}): {verdict}"
    )
    verdict = "ok" if backends >= TARGET_BACKENDS and everything_sent else "MISSED"
    print(
        f"  PostgreSQL / SQLite, 1 worker:    {backends:5.2f} x  (target >= {TARGET_BACKENDS}): "
        f"{verdict}"
    )
    print(
        "  every notification sent once (ledger and sandbox agree), none left open: "
        f"{everything_sent}"
    )


if __name__ == "__main__":
    main()
