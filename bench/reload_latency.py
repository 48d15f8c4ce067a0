"""Hot-reload latency and event-to-send latency of the real daemon, beside the bare sandbox.

Three processes on loopback: this driver, the 1MSG sandbox (it notes when each sendTemplate
arrives, on the machine's monotonic clock) and ``nextstep run`` on a fresh SQLite ledger.

* reload: ``--reloads`` times, a rule file is saved (written aside, renamed over) and
  ``/healthz`` is polled until the daemon reports the new set in force; then one event checks
  that it renders with the new params. Target: every reload under 1 s.
* event-to-send: ``--rate`` single-event ``POST /events/bench`` per second for ``--seconds``
  (open loop: a request every 1/rate s whatever the answers), latency = sandbox arrival of the
  sendTemplate − start of the event's POST; "intake" = the POST's answer − its start (the
  answer comes once the notification is committed). Target: p99 under 50 ms at 200 events/s.
  The sandbox acks every message (sent, delivered, read) to the daemon's webhook, as 1MSG
  does, so the daemon's figures include receiving those acks.
* baseline: the same open loop posting sendTemplate straight to the sandbox (the bare round
  trip at the same rate, arrival − start measured the same way), on another instance id so
  that its acks do not reach the daemon.
* under load: event-to-send again while ``--load`` busy-loop processes compete for the CPU,
  as on a busy host. Each is ``python -c "while True: pass"`` at nice 0, one thread, started
  by this script and killed after the phase: with the default 2 on a 2-core machine, the
  busy loops, the daemon's event loop and ledger thread, the sandbox and this driver share
  two cores: on an otherwise idle machine up to 6 threads want the CPU (the 2 busy loops all
  the time) and the 1-minute load average heads for ~5 (issue 13's "busy host, load ~5").
  Under CFS each runnable thread gets about 2/runnable of a core: a third of a core or so
  for the daemon's event loop, whose Python shares one GIL with its ledger thread.
  ``runnable`` (threads running or ready, sampled every 100 ms, this bench's own included)
  is printed for each phase and for one second before the run (what others ran).
  Target: p99 under 50 ms.

Each phase prints the CPU its processes used per event (µs; the daemon's split between its
event loop and its other threads), read from /proc before and after: CPU per event × rate is
the share of a core the daemon needs to keep up; when that is more than it gets, a backlog
builds and latency grows with the run (not a property of the latency path). ``runnable`` and
the load average show what else ran: on a machine others use, compare CPU per event rather
than wall-clock latency. ``--profile FILE`` runs the daemon under cProfile (its event loop's
CPU time) for a look at where that CPU goes.

    .venv/bin/python bench/reload_latency.py [--rate 200] [--seconds 10] [--reloads 10] [--load 2]
        [--profile daemon.prof]

Bounded: fixed counts, every wait under a deadline, every process stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "sandbox-token"
EVENT_TOKEN = "bench-event-token"
NAMESPACE = "3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de"
RELOAD_TARGET = 1.0
P99_TARGET = 0.050


def phone(i: int) -> str:
    """Distinct numbers ending in 77: no sandbox failure script matches them."""
    return f"346{i:06d}77"


# -- the sandbox process --------------------------------------------------------------------
class Arrivals:
    """ASGI wrapper noting when each sendTemplate arrives (by phone); ``GET /_bench/arrivals``
    returns them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: dict[str, float] = {}
        self.params: dict[str, list[str]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/arrivals":
            body = orjson.dumps({"seen": self.seen, "params": self.params})
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or not scope["path"].endswith("/sendTemplate"):
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        chunks: list[bytes] = []

        async def recording() -> Any:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording, send)
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            body = orjson.loads(b"".join(chunks))
            self.seen.setdefault(body["phone"], arrived)
            self.params[body["phone"]] = [p["text"] for p in body["params"][0]["parameters"]]


def serve_sandbox() -> None:
    """Serve the sandbox until stdin closes; prints ``URL <base_url>`` once listening."""
    import uvicorn

    from nextstep.adapters.channels.onemsg.sandbox.app import create_app
    from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
    from nextstep.adapters.channels.onemsg.sandbox.server import listening_socket, uvicorn_config

    async def main() -> None:
        """Command line entry point (also serves the sandbox child)."""
        app = create_app(SandboxConfig(token=TOKEN, rate_limit=None, record_limit=100))
        sock = listening_socket()
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn_config(Arrivals(app), "127.0.0.1", port))  # type: ignore[arg-type]
        task = asyncio.create_task(server.serve(sockets=[sock]))
        print(f"URL http://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.should_exit = True
        await task

    asyncio.run(main())


# -- the daemon -----------------------------------------------------------------------------
def rule(label: str) -> str:
    """The benchmark rule, ``label`` in its second parameter."""
    return textwrap.dedent(f"""\
        rules:
          - id: bench
            trigger: {{http: {{path: /events/bench}}}}
            to: "{{{{ event.phone }}}}"
            send:
              channel: whatsapp
              template: next_step_short
              namespace: {NAMESPACE}
              language: en
              text: "<<1>>, your next step: <<2>>"
              params: {{1: "{{{{ event.name }}}}", 2: "{label}"}}
        """)


def write_workspace(root: Path, sandbox_url: str) -> Path:
    """nextstep.yaml and rules/ in ``root``, pointed at the sandbox."""
    (root / "rules").mkdir()
    save(root / "rules" / "bench.yaml", rule("v0"))
    config = root / "nextstep.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        store: sqlite:///ledger.db
        rules: rules/
        server: {{listen: "127.0.0.1:0", event_token: {EVENT_TOKEN},
                 webhook_secret: bench-webhook-secret}}
        channels:
          whatsapp: {{type: 1msg, base_url: "{sandbox_url}", instance_id: bench,
                     token: {TOKEN}, rate: 2000/s, max_in_flight: 256}}
        """)
    )
    return config


def save(path: Path, text: str) -> None:
    """Save as editors do: write aside, rename over."""
    aside = path.with_suffix(".part")
    aside.write_text(text, encoding="utf-8")
    aside.replace(path)


def listen_address(root: Path, pid: int) -> str | None:
    """The daemon's address from its health snapshot in the ledger (it may use port 0)."""
    with contextlib.closing(sqlite3.connect(root / "ledger.db", timeout=5)) as conn:
        try:
            row = conn.execute("SELECT value FROM progress WHERE key = 'daemon:health'").fetchone()
        except sqlite3.OperationalError:
            return None
    doc = json.loads(row[0]) if row else {}
    return str(doc["listen"]) if doc.get("pid") == pid and doc.get("listen") else None


async def until(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 30) -> Any:
    """Poll ``probe`` until it returns something; exit after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (value := await probe()) in (None, False):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)
    return value


# -- measurements ---------------------------------------------------------------------------
async def reload_latencies(
    client: httpx.AsyncClient, sandbox: httpx.AsyncClient, root: Path, count: int
) -> list[float]:
    """Seconds from saving a rule file to /healthz reporting the new set in force."""
    taken = []
    for n in range(1, count + 1):
        before = (await client.get("/healthz")).json()["reload"]["at"]
        started = time.monotonic()
        save(root / "rules" / "bench.yaml", rule(f"v{n}"))

        async def applied(before: float = before) -> bool:
            state = (await client.get("/healthz")).json()["reload"]
            return bool(state["at"] != before and state["ok"])

        await until(applied, f"reload {n}")
        taken.append(time.monotonic() - started)
        check = phone(900_000 + n)
        await client.post("/events/bench", json={"phone": check, "name": "R"})

        async def rendered(check: str = check, label: str = f"v{n}") -> bool:
            params = (await sandbox.get("/_bench/arrivals")).json()["params"].get(check)
            return params is not None and params[1] == label

        await until(rendered, f"an event on the rule of reload {n}")
    return taken


async def open_loop(
    post: Callable[[int], Awaitable[int]], first: int, rate: float, seconds: float
) -> dict[str, tuple[float, float]]:
    """Start ``post(i)`` every 1/rate s for ``seconds`` (open loop: whatever the answers);
    returns each phone's start time and the time its answer came. ``post`` returns the HTTP
    status."""
    started: dict[str, float] = {}
    answered: dict[str, float] = {}

    async def timed(i: int) -> int:
        status = await post(i)
        answered[phone(i)] = time.monotonic()
        return status

    tasks = []
    t0 = time.monotonic()
    for k in range(int(rate * seconds)):
        delay = t0 + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        started[phone(first + k)] = time.monotonic()
        tasks.append(asyncio.create_task(timed(first + k)))
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [a for a in answers if isinstance(a, BaseException) or a >= 300]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, e.g. {failed[0]!r}")
    lag = time.monotonic() - t0 - seconds
    if lag > 0.5:
        print(f"  (the load generator fell {lag:.1f}s behind: the machine is busy)")
    return {p: (t, answered[p]) for p, t in started.items()}


async def latencies(
    sandbox: httpx.AsyncClient, posted: dict[str, tuple[float, float]], timeout: float = 60
) -> tuple[list[float], list[float]]:
    """Once every send has reached the sandbox: per phone, arrival − start (event-to-send)
    and answer − start (intake: the POST answered once its notification is committed)."""

    async def arrived() -> dict[str, float] | None:
        seen: dict[str, float] = (await sandbox.get("/_bench/arrivals")).json()["seen"]
        return seen if all(p in seen for p in posted) else None

    seen = await until(arrived, "every send to reach the sandbox", timeout)
    total = sorted(seen[p] - start for p, (start, _) in posted.items())
    intake = sorted(answered - start for start, answered in posted.values())
    return total, intake


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values``."""
    return values[min(len(values) - 1, int(q * len(values)))]


def cpu_seconds(pid: int, thread: str | None = None) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux), or of
    one of its threads."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the daemon's event loop (its main thread) and of its other threads (the
    ledger thread, the WAL checkpointer, …: Python does not name them for the OS)."""
    split = {"loop": 0.0, "threads": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            seconds = cpu_seconds(pid, task.name)
            split["loop" if task.name == str(pid) else "threads"] += seconds
    return split


def runnable() -> int:
    """Threads running or ready to run on the machine now (``/proc/loadavg``'s 4th field)."""
    return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])


@dataclasses.dataclass
class Phase:
    """One open-loop run: latencies (s, sorted), the CPU it cost, the machine's load."""

    name: str
    total: list[float]
    intake: list[float]
    cpu: dict[str, float]  # CPU seconds per process over the run
    threads: dict[str, float]  # CPU seconds per daemon thread over the run
    load: float  # 1-minute load average at the end of the run
    running: float  # mean threads runnable, sampled every 100 ms during the run

    def show(self) -> None:
        """Print p50/p99/max of event-to-send and of intake, CPU per event, load."""
        n = len(self.total)
        cpu = "  ".join(f"{k} {v / n * 1e6:4.0f}" for k, v in self.cpu.items())
        threads = "/".join(f"{v / n * 1e6:.0f}" for v in self.threads.values())
        print(
            f"  {self.name:<28} p50 {quantile(self.total, 0.5) * 1000:7.1f}  "
            f"p99 {quantile(self.total, 0.99) * 1000:7.1f}  max {self.total[-1] * 1000:7.1f} ms"
            f"   intake p99 {quantile(self.intake, 0.99) * 1000:6.1f} ms"
        )
        print(f"  {'':<28} CPU µs/event: {cpu} (loop/threads {threads})")
        print(f"  {'':<28} runnable {self.running:.1f}, load avg {self.load:.1f}  (n={n})")


# -- driver ---------------------------------------------------------------------------------
@contextlib.contextmanager
def sandbox_process() -> Any:
    """The sandbox in a child process; yields its base URL and pid."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("URL "):
            raise SystemExit("the sandbox did not start")
        yield line.split()[1], proc.pid
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)


PROFILED = """\
import cProfile, sys, time
from nextstep.engine.commands.cli import main
out = sys.argv.pop(1)
profile = cProfile.Profile(time.thread_time)  # the event loop's CPU, not its waits
try:
    profile.runcall(main)
finally:
    profile.dump_stats(out)
"""


@contextlib.asynccontextmanager
async def daemon_process(
    root: Path, config: Path, profile: str | None = None
) -> AsyncIterator[tuple[str, int]]:
    """``nextstep run`` as a child process (under cProfile into ``profile`` if given: the
    event loop thread's CPU time); yields
    its address and pid, stops it with SIGTERM."""
    log = (root / "daemon.log").open("wb")
    code = "from nextstep.engine.commands.cli import main; main()"
    lead = [PROFILED, str(Path(profile).resolve())] if profile else [code]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        *lead,
        "run",
        "-c",
        str(config),
        "--log-level",
        "warning",
        stdout=log,
        stderr=log,
        cwd=root,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        async def address() -> str | None:
            if proc.returncode is not None:
                raise SystemExit(f"the daemon exited: see {root / 'daemon.log'}")
            return listen_address(root, proc.pid) if (root / "ledger.db").exists() else None

        yield await until(address, "the daemon to serve"), proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        log.close()
        if code != 0:
            print(f"(the daemon exited with {code}; log in {root / 'daemon.log'})")


SEND_BODY = {
    "template": "next_step_short",
    "namespace": NAMESPACE,
    "language": {"policy": "deterministic", "code": "en"},
    "params": [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "B"}, {"type": "text", "text": "x"}],
        }
    ],
}


@contextlib.contextmanager
def cpu_load(processes: int) -> Any:
    """``processes`` busy loops (``while True: pass``, nice 0, one thread each) for the
    duration of the block (a busy host), then stopped."""
    spinning = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait(timeout=10)


@dataclasses.dataclass
class Setup:
    """What the phases post to and measure."""

    session: aiohttp.ClientSession
    sandbox: httpx.AsyncClient
    listen: str
    sandbox_url: str
    pids: dict[str, int]  # process name -> pid, for the CPU figures


async def phase(
    setup: Setup, name: str, post: Callable[[int], Awaitable[int]], first: int, args: Any
) -> Phase:
    """One open loop of ``post`` at ``args.rate`` for ``args.seconds``, measured."""
    before = {k: cpu_seconds(pid) for k, pid in setup.pids.items()}
    threads_before = thread_cpu(setup.pids["daemon"])
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(runnable())
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    try:
        posted = await open_loop(post, first, args.rate, args.seconds)
        total, intake = await latencies(setup.sandbox, posted)
    finally:
        sampler.cancel()
    cpu = {k: cpu_seconds(pid) - before[k] for k, pid in setup.pids.items()}
    threads = {k: v - threads_before[k] for k, v in thread_cpu(setup.pids["daemon"]).items()}
    running = statistics.mean(samples) if samples else 0.0
    return Phase(name, total, intake, cpu, threads, os.getloadavg()[0], running)


async def send_latencies(setup: Setup, args: argparse.Namespace) -> list[Phase]:
    """Event-to-send through the daemon, the bare sandbox round trip, and event-to-send under
    ``args.load`` busy processes, at ``args.rate``."""

    async def status_of(url: str, body: dict[str, Any], token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with setup.session.post(url, json=body, headers=headers) as answer:
            await answer.read()
            return answer.status

    async def event(i: int) -> int:
        body = {"phone": phone(i), "name": "B"}
        return await status_of(f"http://{setup.listen}/events/bench", body, EVENT_TOKEN)

    async def bare(i: int) -> int:
        body = {**SEND_BODY, "phone": phone(i)}
        # Another instance: its acks go nowhere (the daemon registered its webhook on "bench").
        return await status_of(f"{setup.sandbox_url}/bare/sendTemplate", body, TOKEN)

    await open_loop(event, 500_000, args.rate, 1.0)  # warm up both paths
    await open_loop(bare, 600_000, args.rate, 1.0)
    phases = [await phase(setup, "nextstep, no extra load", event, 0, args)]
    phases.append(await phase(setup, "baseline (bare sendTemplate)", bare, 200_000, args))
    with cpu_load(args.load):
        loaded = f"nextstep, {args.load} busy loops"
        phases.append(await phase(setup, loaded, event, 800_000, args))
    return phases


async def measure(args: argparse.Namespace) -> tuple[list[float], list[Phase]]:
    """Reload latencies (seconds, sorted) and the event-to-send phases."""
    with sandbox_process() as (sandbox_url, sandbox_pid), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_workspace(root, sandbox_url)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with (
            daemon_process(root, config, args.profile) as (listen, daemon_pid),
            httpx.AsyncClient(
                base_url=f"http://{listen}",
                limits=limits,
                timeout=30,
                headers={"Authorization": f"Bearer {EVENT_TOKEN}"},
            ) as client,
            httpx.AsyncClient(base_url=sandbox_url, limits=limits, timeout=30) as sandbox,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session,
        ):
            reloads = sorted(await reload_latencies(client, sandbox, root, args.reloads))
            pids = {"daemon": daemon_pid, "sandbox": sandbox_pid, "driver": os.getpid()}
            setup = Setup(session, sandbox, listen, sandbox_url, pids)
            phases = await send_latencies(setup, args)
    return reloads, phases


async def run(args: argparse.Namespace) -> None:
    """Measure and print the figures beside their targets."""
    samples = []
    for _ in range(10):
        samples.append(runnable() - 1)  # less this process, sampling
        await asyncio.sleep(0.1)
    before = f"runnable {statistics.mean(samples):.1f}, load avg {os.getloadavg()[0]:.1f}"
    reloads, phases = await measure(args)
    print(f"machine: {os.cpu_count()} CPUs; before the run: {before}")
    if reloads:
        print(f"reload (save → new rule in force), {len(reloads)} reloads:")
        print(
            f"  p50 {statistics.median(reloads) * 1000:.0f} ms   max {reloads[-1] * 1000:.0f} ms"
            f"   target < {RELOAD_TARGET * 1000:.0f} ms: "
            f"{'met' if reloads[-1] < RELOAD_TARGET else 'MISSED'}"
        )
    print(f"event-to-send (ms) at {args.rate:.0f} events/s over HTTP for {args.seconds:.0f} s:")
    for p in phases:
        p.show()
    for p in (phases[0], phases[2]):
        p99 = quantile(p.total, 0.99)
        verdict = "met" if p99 < P99_TARGET else "MISSED"
        print(f"  target p99 < {P99_TARGET * 1000:.0f} ms, {p.name}: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--load", type=int, default=2, help="busy-loop processes for the load")
    parser.add_argument("--profile", help="run the daemon under cProfile, stats to this file")
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox()
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
