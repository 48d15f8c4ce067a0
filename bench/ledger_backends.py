"""The ledger's cost on each backend: SQLite (a temporary file) and PostgreSQL (a temporary
database on the local server), through the same :class:`Store` calls the engine makes.

* enqueue: ``store.enqueue`` of batches of 1, 100 and 1,000 notifications (what an emit writes);
* send path: ``lease_due`` then ``record_attempts`` of the leased batch (what the dispatcher
  and its writer do), batches of 1 and 50: one round trip is the pair;
* acks: ``record_acks`` of webhook batches of 1 and 100 ``delivered`` acks (one transaction);
* how to call it from asyncio: the ledger thread (``LedgerRunner.call`` of ``store.get``) beside
  the same read on the event loop with psycopg's async connection, and beside the bare
  synchronous call (the thread hop's own cost).

    .venv/bin/python bench/ledger_backends.py [--rows 3000] [--postgres URL]

``--postgres`` is a database the bench may create others from (default: the test server's
``postgresql://postgres@127.0.0.1:5432/test``); the bench creates ``nextstep_bench_<random>``
and drops it at the end. Every phase handles a fixed number of rows; figures are the best of
``--rounds`` runs, in microseconds per call and per row.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nextstep.engine.delivery.acks import record_acks  # noqa: E402
from nextstep.engine.delivery.fallbacks import PolicyContext, RuleBook  # noqa: E402
from nextstep.engine.ledger import open_store  # noqa: E402
from nextstep.engine.ledger.base import AttemptResult, NewNotification, Store  # noqa: E402
from nextstep.engine.ledger.runner import LedgerRunner  # noqa: E402
from nextstep.engine.model import Ack, State  # noqa: E402

T0 = 1_780_000_000.0
Figures = dict[str, tuple[float, float]]  # phase -> (µs per call, µs per row)


def _item(i: int) -> NewNotification:
    return NewNotification(
        rule_id="bench",
        rule_version="v1",
        channel="whatsapp",
        recipient=f"34600{i:06d}",
        fields={"template": "next_step", "language": "en", "params": ["Maria", "docs"]},
        event={"phone": f"+34600{i:06d}", "first_name": "maria", "application_id": i},
        created_at=T0,
        dedupe_key=f"case-{i}",
        expect="delivered",
        within=900.0,
    )


def _timed(run: Callable[[], int], rounds: int) -> tuple[float, int]:
    """Best wall time of ``rounds`` runs of ``run`` (which returns how many calls it made)."""
    best, calls = float("inf"), 0
    for _ in range(rounds):
        started = time.perf_counter()
        calls = run()
        best = min(best, time.perf_counter() - started)
    return best, calls


def _enqueue(fresh: Callable[[], Store], rows: int, batch: int) -> Callable[[], int]:
    def run() -> int:
        store = fresh()
        items = [_item(i) for i in range(rows)]
        try:
            for start in range(0, rows, batch):
                store.enqueue(items[start : start + batch])
        finally:
            store.close()
        return rows // batch

    return run


def _send_path(fresh: Callable[[], Store], rows: int, batch: int) -> Callable[[], int]:
    def run() -> int:
        store = fresh()
        store.enqueue([_item(i) for i in range(rows)])
        calls = 0
        try:
            while leased := store.lease_due(T0, batch):
                store.record_attempts(
                    [
                        AttemptResult(
                            n.id,
                            T0 + 1,
                            State.SENT,
                            {"kind": "accepted", "provider_id": f"wamid.{n.id}"},
                            provider_id=f"wamid.{n.id}",
                            attempt=1,
                        )
                        for n in leased
                    ]
                )
                calls += 1
        finally:
            store.close()
        return calls

    return run


def _acks(fresh: Callable[[], Store], rows: int, batch: int) -> Callable[[], int]:
    ctx = PolicyContext(rules=RuleBook(lambda: {}))

    def prepare() -> Store:
        store = fresh()
        store.enqueue([_item(i) for i in range(rows)])
        leased = store.lease_due(T0, rows)
        store.record_attempts(
            [
                AttemptResult(n.id, T0, State.SENT, {}, provider_id=f"wamid.{n.id}", attempt=1)
                for n in leased
            ]
        )
        return store

    def run() -> int:
        store = prepare()
        acks = [Ack(f"wamid.{i}", "delivered") for i in range(1, rows + 1)]
        try:
            for start in range(0, rows, batch):
                record_acks(store, acks[start : start + batch], T0 + 2, ctx)
        finally:
            store.close()
        return rows // batch

    return run


def _hop(store: Store, calls: int) -> dict[str, float]:
    """µs per ``store.get``: called directly, through the ledger thread, and (PostgreSQL) as
    the same SELECT on psycopg's async connection from the event loop."""
    nid = store.enqueue([_item(0)])[0].id
    started = time.perf_counter()
    for _ in range(calls):
        store.get(nid)
    direct = (time.perf_counter() - started) / calls * 1e6

    async def threaded() -> float:
        runner = LedgerRunner(store)
        started = time.perf_counter()
        for _ in range(calls):
            await runner.call(store.get, nid)
        elapsed = time.perf_counter() - started
        runner.close(close_store=False)
        return elapsed / calls * 1e6

    return {"direct": direct, "ledger thread": asyncio.run(threaded())}


def _async_driver(url: str, calls: int) -> float:
    """µs per ``store.get``'s SELECT on psycopg's async connection, from the event loop."""
    import psycopg

    from nextstep.engine.ledger.rows import COLUMNS

    async def run() -> float:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            query = f"SELECT {COLUMNS} FROM notifications WHERE id = %s"
            started = time.perf_counter()
            for _ in range(calls):
                await (await conn.execute(query, (1,))).fetchone()
            return (time.perf_counter() - started) / calls * 1e6
        finally:
            await conn.close()

    return asyncio.run(run())


@contextmanager
def _postgres(admin: str) -> Iterator[tuple[Callable[[], Store], str]]:
    """A temporary database: a function emptying it and opening the store, and its URL."""
    import psycopg

    name = f"nextstep_bench_{secrets.token_hex(4)}"
    url = admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        open_store(url).close()

        def fresh() -> Store:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "TRUNCATE notifications, history, acks, progress, rule_versions "
                    "RESTART IDENTITY CASCADE"
                )
            return open_store(url)

        yield fresh, url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _sqlite() -> Iterator[Callable[[], Store]]:
    """A new SQLite ledger file per call, in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        count = iter(range(1_000_000))

        def fresh() -> Store:
            return open_store(f"sqlite:///{folder}/ledger-{next(count)}.db")

        yield fresh


PHASES: list[tuple[str, Callable[..., Callable[[], int]], int]] = [
    ("enqueue x1", _enqueue, 1),
    ("enqueue x100", _enqueue, 100),
    ("enqueue x1000", _enqueue, 1000),
    ("lease+record x1", _send_path, 1),
    ("lease+record x50", _send_path, 50),
    ("acks x1", _acks, 1),
    ("acks x100", _acks, 100),
]


def measure(fresh: Callable[[], Store], rows: int, rounds: int) -> Figures:
    """Every phase on one backend."""
    figures: Figures = {}
    for name, phase, batch in PHASES:
        count = min(rows, 500) if batch == 1 else rows  # one row per call: fewer rows
        seconds, calls = _timed(phase(fresh, count, batch), rounds)
        figures[name] = (seconds / max(calls, 1) * 1e6, seconds / count * 1e6)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure both backends and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    with _sqlite() as fresh_sqlite, _postgres(args.postgres) as (fresh_postgres, url):
        results = {
            "sqlite": measure(fresh_sqlite, args.rows, args.rounds),
            "postgres": measure(fresh_postgres, args.rows, args.rounds),
        }
        hops = {}
        for name, fresh in (("sqlite", fresh_sqlite), ("postgres", fresh_postgres)):
            store = fresh()
            hops[name] = _hop(store, 2000)
            store.close()
        hops["postgres"]["async driver"] = _async_driver(url, 2000)
    row = "{:<18}{:>16}{:>9}{:>18}{:>9}{:>11}"
    header = ("phase", "sqlite µs/call", "µs/row", "postgres µs/call", "µs/row", "pg/sqlite")
    print(row.format(*header))
    for name, _, _ in PHASES:
        (s_call, s_row), (p_call, p_row) = results["sqlite"][name], results["postgres"][name]
        figures = (f"{s_call:.0f}", f"{s_row:.1f}", f"{p_call:.0f}", f"{p_row:.1f}")
        print(row.format(name, *figures, f"{p_row / s_row:.1f}x"))
    print("\nstore.get from asyncio, µs per call:")
    for name, figures in hops.items():
        print(f"  {name:<9}" + "  ".join(f"{k}: {v:.0f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
