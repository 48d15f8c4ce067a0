"""Response times of the web console's pages on a large ledger.

Builds (once, kept in ``--dir``) a SQLite ledger of ``--rows`` notifications created over
``--days`` days with their history (bench/console_ledger.py), then requests each page of the
console ``--repeat`` times through the real app (Starlette, the templates, the console's own
ledger thread) in this process, logged in as an operator, and prints p50/p95 per page. The
overview's one-second cache is turned off, so every request reads the ledger.
Target: p95 under 300 ms for the overview, the list and the trace.

    .venv/bin/python bench/console.py [--rows 1000000] [--days 30] [--repeat 40]

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
from pathlib import Path

import httpx
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.console_ledger import RULES, build  # noqa: E402
from nextstep.engine.clock import SystemClock  # noqa: E402
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
CONFIG = """\
store: sqlite:///ledger.db
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


def workspace(folder: Path, rows: int, days: float) -> Path:
    """The config and the ledger (built when missing or of another size)."""
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    marker = folder / f"built-{rows}-{days}"
    if not marker.exists():
        for old in folder.glob("ledger.db*"):
            old.unlink()
        for old in folder.glob("built-*"):
            old.unlink()
        started = time.perf_counter()
        build(folder / "ledger.db", rows, days=days, now=time.time())
        print(f"built a ledger of {rows:,} notifications in {time.perf_counter() - started:.0f} s")
        marker.touch()
    hashed = hash_password("bench", n=2**10)
    (folder / "nextstep.yaml").write_text(CONFIG.format(secret=SECRET, hashed=hashed))
    rules = "rules:\n" + "".join(RULE.format(rule_id=r) for r in RULES)
    (folder / "rules" / "bench.yaml").write_text(textwrap.dedent(rules))
    return folder / "nextstep.yaml"


def pages(rows: int, rng: random.Random) -> dict[str, list[str]]:
    """Each page's URLs (several variants, taken in turn)."""
    ids = [rng.randrange(1, rows + 1) for _ in range(50)]
    deep = f"{time.time() - 20 * 86400!r}:{rows}"
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


async def measure(config_path: Path, repeat: int, rng: random.Random, rows: int) -> None:
    """Request every page ``repeat`` times; print p50 and p95."""
    overview.CACHE_FOR = 0.0  # every request reads the ledger
    config = load_config(config_path)
    store = open_store(config.store)
    assert isinstance(store, ConsoleReads)
    runner = LedgerRunner(store)
    host = ConsoleHost(runner, store, SystemClock(), lambda: config)
    settings = config.server.console
    assert settings is not None
    app = Starlette(routes=console_routes(host, settings))
    _, cookie = Signer(SECRET).session("ops", "operator", time.time() + 3600)
    transport = httpx.ASGITransport(app=app)
    print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    async with httpx.AsyncClient(
        transport=transport, base_url="http://console", cookies={COOKIE: cookie}
    ) as client:
        for name, urls in pages(rows, rng).items():
            times = []
            for i in range(repeat):
                started = time.perf_counter()
                answer = await client.get(urls[i % len(urls)])
                times.append(time.perf_counter() - started)
                assert answer.status_code == 200, (name, answer.status_code, answer.text[:200])
            times.sort()
            p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
            flag = (
                ""
                if not name.startswith(("overview", "list", "trace"))
                else ("  ok" if p95 < TARGET else "  OVER TARGET")
            )
            print(f"{name:<28} {p50 * 1e3:8.1f} {p95 * 1e3:8.1f} {times[-1] * 1e3:8.1f}{flag}")
    runner.close()


def main() -> None:
    """Parse the options, build the ledger when needed, measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "nextstep-bench-console"
    )
    args = parser.parse_args()
    config_path = workspace(args.dir, args.rows, args.days)
    print(f"ledger: {args.rows:,} notifications over {args.days:g} days ({args.dir})")
    asyncio.run(measure(config_path, args.repeat, random.Random(11), args.rows))


if __name__ == "__main__":
    main()
