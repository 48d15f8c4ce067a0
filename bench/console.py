"""Response times of the web console's pages on a large ledger, on SQLite and PostgreSQL.

Builds (once per size, kept) a ledger of ``--rows`` notifications created over ``--days`` days
with their history (bench/console_ledger.py): a SQLite file in ``--dir``, and a PostgreSQL
database (``nextstep_bench_console_<rows>_<days>`` on the server of ``--postgres``: drop it
when done). Then requests each page of the console ``--repeat`` times through the real app
(Starlette, the templates, the console's own ledger thread) in this process, logged in as an
operator, and prints p50/p95 per page. The overview's one-second cache is turned off, so
every request reads the ledger (its per-hour counts are kept as in a running console: see
engine/runtime/console/counting.py).

Three views of the overview: a *first look* (nothing counted yet: every hour of the window is
counted); back-to-back requests; and an overview left open for ``--live`` minutes, refreshing
itself every 2 s (the clock moves 2 s per request, so closed hours go stale and are counted
again as they would be). The ledger's times are shifted to end when the bench starts.
Target: p95 under 300 ms for the overview, the list and the trace.

    .venv/bin/python bench/console.py [--rows 1000000] [--days 30] [--backend both]

Bounded: fixed counts; nothing listens on the network.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psycopg
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.console_ledger import RULES, build_postgres, build_sqlite  # noqa: E402
from nextstep.engine.ledger import open_store  # noqa: E402
from nextstep.engine.ledger.reads import ConsoleReads  # noqa: E402
from nextstep.engine.ledger.runner import LedgerRunner  # noqa: E402
from nextstep.engine.rules.config import load_config  # noqa: E402
from nextstep.engine.runtime.console import overview  # noqa: E402
from nextstep.engine.runtime.console.app import console_routes  # noqa: E402
from nextstep.engine.runtime.console.host import ConsoleHost  # noqa: E402
from nextstep.engine.runtime.console.passwords import hash_password  # noqa: E402
from nextstep.engine.runtime.console.sessions import COOKIE, Signer  # noqa: E402

SECRET = "b" * 40
TARGET = 0.300
DATABASE = "nextstep_bench_console_{rows}_{days:g}"  # one per size, kept between runs
REFRESH = 2.0  # seconds between an open overview's requests (the console's default)
FIRST_LOOKS = 3
CONFIG = """\
store: {store}
rules: rules/
default_country: ES
server:
  console:
    session_secret: {secret}
    users: [{{name: ops, role: operator, password_hash: "{hashed}"}}]
channels:
  main:
    type: 1msg
    base_url: http://127.0.0.1:9
    instance_id: bench
    token: bench-token
"""
RULE = """\
  - id: {rule_id}
    trigger: {{http: {{path: /events/{rule_id}}}}}
    to: "{{{{ event.phone }}}}"
    send:
      channel: main
      template: next_step
      namespace: ns
      language: en
      text: 'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>'
      params: {{1: "{{{{ event.first_name | title }}}}", 2: "loan #{{{{ event.application_id }}}}",
               3: "upload documents"}}
"""


class BenchClock:
    """Time as the ledger sees it: ``built`` (when its rows end) plus the time since the bench
    started, plus what :meth:`skip` added (an overview left open)."""

    def __init__(self, built: float) -> None:
        self._offset = built - time.time()

    def now(self) -> float:
        return time.time() + self._offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def skip(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self._offset += seconds


def _built(marker: Path) -> float | None:
    try:
        return float(marker.read_text())
    except (OSError, ValueError):
        return None


def sqlite_ledger(folder: Path, rows: int, days: float) -> tuple[str, float]:
    """The SQLite ledger's URL and when its rows end (built when missing or of another size)."""
    marker = folder / f"built-sqlite-{rows}-{days}"
    built = _built(marker)
    if built is None:
        for old in [*folder.glob("ledger.db*"), *folder.glob("built-sqlite-*")]:
            old.unlink()
        built, started = time.time(), time.perf_counter()
        build_sqlite(folder / "ledger.db", rows, days=days, now=built)
        print(f"built a SQLite ledger of {rows:,} in {time.perf_counter() - started:.0f} s")
        marker.write_text(repr(built))
    return f"sqlite:///{folder / 'ledger.db'}", built


def postgres_ledger(folder: Path, admin: str, rows: int, days: float) -> tuple[str, float]:
    """The PostgreSQL ledger's URL and when its rows end (built when missing or another size)."""
    database = DATABASE.format(rows=rows, days=days).replace(".", "_")
    url = admin.rsplit("/", 1)[0] + "/" + database
    marker = folder / f"built-postgres-{rows}-{days}"
    built = _built(marker)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
            built = None
    if built is None:
        for old in folder.glob("built-postgres-*"):
            old.unlink()
        built, started = time.time(), time.perf_counter()
        build_postgres(url, rows, days=days, now=built)
        print(f"built a PostgreSQL ledger of {rows:,} in {time.perf_counter() - started:.0f} s")
        marker.write_text(repr(built))
    return url, built


def workspace(folder: Path, store: str) -> Path:
    """The config of a console on ``store``."""
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    hashed = hash_password("bench", n=2**10)
    path = folder / "nextstep.yaml"
    path.write_text(CONFIG.format(store=store, secret=SECRET, hashed=hashed))
    rules = "rules:\n" + "".join(RULE.format(rule_id=r) for r in RULES)
    (folder / "rules" / "bench.yaml").write_text(textwrap.dedent(rules))
    return path


def pages(rows: int, now: float, rng: random.Random) -> dict[str, list[str]]:
    """Each page's URLs (several variants, taken in turn)."""
    ids = [rng.randrange(1, rows + 1) for _ in range(50)]
    deep = f"{now - 20 * 86400!r}:{rows}"
    return {
        "overview (hour)": ["/ui/overview?window=hour"],
        "overview (day)": ["/ui/overview?window=day"],
        "overview (week)": ["/ui/overview?window=week"],
        "overview live part (day)": ["/ui/overview/live?window=day"],
        "list (no filter)": ["/ui/notifications"],
        "list (rule)": [f"/ui/notifications?rule={r}" for r in RULES],
        "list (state)": [f"/ui/notifications?state={s}" for s in ("failed", "in_doubt", "read")],
        "list (rule+state+since)": ["/ui/notifications?rule=survey&state=failed&since=7d"],
        "list (phone tail)": [f"/ui/notifications?phone={rng.randrange(10**6):06d}" for _ in ids],
        "list (dedupe key)": [f"/ui/notifications?key={i}:docs" for i in ids],
        "list (provider id)": [f"/ui/notifications?provider=wamid.{i}" for i in ids],
        "list (page 20 days back)": [f"/ui/notifications?after={deep}"],
        "trace": [f"/ui/notifications/{i}" for i in ids],
        "in doubt": ["/ui/in-doubt"],
        "rules": ["/ui/rules"],
    }


def report(name: str, times: Sequence[float]) -> None:
    """One line: p50, p95 and the slowest, against the target for the pages it applies to."""
    ordered = sorted(times)
    p50, p95 = statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]
    timed = name.startswith(("overview", "list", "trace")) and "first look" not in name
    flag = ("  ok" if p95 < TARGET else "  OVER TARGET") if timed else ""
    print(f"{name:<34} {p50 * 1e3:8.1f} {p95 * 1e3:8.1f} {ordered[-1] * 1e3:8.1f}{flag}")


class Console:
    """The console's app on one ledger, as a client sees it."""

    def __init__(self, config_path: Path, clock: BenchClock) -> None:
        self.config = load_config(config_path)
        store = open_store(self.config.store)
        assert isinstance(store, ConsoleReads)
        self.runner = LedgerRunner(store)
        self.host = ConsoleHost(self.runner, store, clock, lambda: self.config)
        _, self.cookie = Signer(SECRET).session("ops", "operator", time.time() + 86400)

    def client(self) -> httpx.AsyncClient:
        """A client of a new app (a console just started: nothing counted yet)."""
        settings = self.config.server.console
        assert settings is not None
        app = Starlette(routes=console_routes(self.host, settings))
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://console",
            cookies={COOKIE: self.cookie},
        )


async def _get(client: httpx.AsyncClient, url: str) -> float:
    started = time.perf_counter()
    answer = await client.get(url)
    took = time.perf_counter() - started
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:200])
    return took


async def measure(
    config_path: Path, clock: BenchClock, repeat: int, live: float, rows: int
) -> None:
    """Request every page ``repeat`` times; print p50 and p95."""
    overview.CACHE_FOR = 0.0  # every request reads the ledger
    console = Console(config_path, clock)
    print(f"{'page':<34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for window in ("day", "week"):
        firsts = []
        for _ in range(FIRST_LOOKS):
            async with console.client() as client:
                firsts.append(await _get(client, f"/ui/overview?window={window}"))
        report(f"overview ({window}), first look", firsts)
    async with console.client() as client:
        await _get(client, "/ui/overview?window=week")  # counted once, as a running console
        rng = random.Random(11)
        for name, urls in pages(rows, clock.now(), rng).items():
            report(name, [await _get(client, urls[i % len(urls)]) for i in range(repeat)])
        for window in ("day", "week"):
            await _get(client, f"/ui/overview/live?window={window}")  # a first look, above
            times = []
            for _ in range(int(live * 60 / REFRESH)):
                clock.skip(REFRESH)
                times.append(await _get(client, f"/ui/overview/live?window={window}"))
            report(f"overview ({window}) open {live:g} min", times)
    console.runner.close()


def main() -> None:
    """Parse the options, build the ledgers when needed, measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--live", type=float, default=10.0, help="minutes an overview is open")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "nextstep-bench-console"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a database of the server the bench may create its own on",
    )
    args = parser.parse_args()
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        folder = args.dir / f"{backend}-{args.rows}-{args.days:g}"
        folder.mkdir(parents=True, exist_ok=True)
        if backend == "sqlite":
            store, built = sqlite_ledger(folder, args.rows, args.days)
        else:
            store, built = postgres_ledger(folder, args.postgres, args.rows, args.days)
        print(f"\n{backend}: {args.rows:,} notifications over {args.days:g} days")
        config_path = workspace(folder, store)
        asyncio.run(measure(config_path, BenchClock(built), args.repeat, args.live, args.rows))


if __name__ == "__main__":
    main()
