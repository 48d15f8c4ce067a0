"""Three ``nextstep run`` workers on one PostgreSQL ledger (issue 10 section 3, done-when):
6,000 notifications from a CSV folder, HTTP events and a db_poll table, each sent exactly once
(counted at the sandbox); one worker SIGKILLed mid-run: nothing lost, nothing twice, its
in-doubt notifications listed (at most its in-flight cap), its CSV folder taken over within
10 s."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN, SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.server import Running, serving
from tests.runtime.harness import (
    EVENT_TOKEN,
    INSTANCE,
    WEBHOOK_SECRET,
    DaemonProcess,
    Workspace,
    rule_yaml,
    wait_for,
)
from tests.support.ledgers import PostgresLedgers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

IN_FLIGHT = 20  # per worker
PER_KIND = 2000
CSV_TRIGGER = 'csv: {path: "inbox/*.csv", settle: 50ms}'
HTTP_TRIGGER = "http: {path: /events/w}"


def db_poll_trigger(crm: Path) -> str:
    query = (
        "SELECT id, updated_at, phone, key, name FROM crm WHERE updated_at > :cursor "
        "OR (updated_at = :cursor AND id > :cursor_id) ORDER BY updated_at, id LIMIT :batch"
    )
    return (
        f'db_poll: {{url: "sqlite:///{crm}", query: "{query}", cursor: updated_at, id: id, '
        "every: 200ms, batch: 500, start: 0}"
    )


def write_config(space: Workspace, *, rate: str, lease: str = "6s") -> None:
    (space.root / "rules").mkdir(exist_ok=True)
    space.config.write_text(
        textwrap.dedent(
            f"""\
            store: "{space.store}"
            rules: rules/
            default_country: ES
            workers:
              lease: {lease}
            server:
              listen: 127.0.0.1:0
              event_token: {EVENT_TOKEN}
              webhook_secret: {WEBHOOK_SECRET}
            channels:
              whatsapp:
                type: 1msg
                base_url: {space.sandbox_url}
                instance_id: {INSTANCE}
                token: {DEFAULT_TOKEN}
                rate: {rate}
                max_in_flight: {IN_FLIGHT}
            """
        ),
        encoding="utf-8",
    )


def phone(kind: int, i: int) -> str:
    return f"346{kind}{i:05d}42"  # ends in 42: the sandbox accepts it (no scripted suffix)


def write_csv(path: Path, kind: int, rows: range) -> None:
    lines = ["phone,key,name"] + [f"+{phone(kind, i)},c{kind}-{i},N" for i in rows]
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(path)


def sends_by_phone(sandbox: Running) -> Counter[str]:
    count: Counter[str] = Counter()
    for request in list(sandbox.state.requests):
        if request.path.endswith("sendTemplate") and request.status == 200:
            body: Any = request.body
            count[str(body["phone"])] += 1
    return count


async def start_all(workspace: Workspace, prefix: str) -> list[DaemonProcess]:
    """Three workers, one after the other: the harness knows a worker serves by its health
    snapshot, a key all workers write (one at a time, it is seen)."""
    workers: list[DaemonProcess] = []
    try:
        for i in range(3):
            workers.append(await DaemonProcess.start(workspace, f"{prefix}{i}"))
    except BaseException:
        for w in workers:
            await w.kill()
        raise
    return workers


@pytest.fixture
async def sandbox() -> AsyncIterator[Running]:
    config = SandboxConfig(latency=0.05, ack_delay=0.05, record_limit=20_000)
    async with serving(config) as running:
        yield running


@pytest.fixture
def workspace(tmp_path: Path, sandbox: Running, postgres_session: PostgresLedgers) -> Workspace:
    return Workspace(tmp_path, sandbox.base_url, store=postgres_session.fresh())


def ledger(workspace: Workspace, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(workspace.store, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def source_holders(workspace: Workspace) -> dict[str, str]:
    """Which worker reads which source, from the workers table."""
    rows = ledger(workspace, "SELECT id, pid, holds FROM workers WHERE stopped_at IS NULL")
    import json

    held: dict[str, str] = {}
    for _wid, pid, holds in rows:
        for source in json.loads(holds).get("sources", []):
            held[source] = str(pid)
    return held


async def test_three_workers_share_the_work_and_survive_a_kill(
    workspace: Workspace, sandbox: Running
) -> None:
    write_config(workspace, rate="1000/s")
    crm = workspace.root / "crm.db"
    with contextlib.closing(sqlite3.connect(crm)) as conn:
        conn.execute(
            "CREATE TABLE crm (id INTEGER PRIMARY KEY, updated_at REAL, phone TEXT, "
            "key TEXT, name TEXT)"
        )
        conn.executemany(
            "INSERT INTO crm VALUES (?, ?, ?, ?, ?)",
            [(i + 1, 1000.0 + i, f"+{phone(3, i)}", f"d{i}", "N") for i in range(PER_KIND)],
        )
        conn.commit()
    (workspace.root / "inbox").mkdir()
    workspace.write_rule("csv.yaml", rule_yaml("from-csv", CSV_TRIGGER, "csv"))
    workspace.write_rule("http.yaml", rule_yaml("from-http", HTTP_TRIGGER, "http"))
    workspace.write_rule("db.yaml", rule_yaml("from-db", db_poll_trigger(crm), "db"))
    write_csv(workspace.root / "inbox" / "first.csv", 1, range(PER_KIND // 2))

    workers = await start_all(workspace, "w")
    try:
        for start in range(0, PER_KIND, 250):
            events = [
                {"phone": f"+{phone(2, i)}", "key": f"h{i}", "name": "N"}
                for i in range(start, start + 250)
            ]
            answer = await workers[start // 250 % 3].post_event("/events/w", events)
            assert answer.status_code == 202, answer.text

        async def csv_holder() -> str | None:
            return source_holders(workspace).get("files:inbox/*.csv")

        holder_pid = await wait_for(csv_holder, "a worker to hold the CSV folder")
        (victim,) = [w for w in workers if str(w.process.pid) == holder_pid]

        async def busy() -> bool:
            return sum(sends_by_phone(sandbox).values()) >= 1500

        await wait_for(busy, "the first 1,500 sends", timeout=60)
        victim.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await victim.process.wait()
        write_csv(workspace.root / "inbox" / "second.csv", 1, range(PER_KIND // 2, PER_KIND))

        async def taken_over() -> str | None:
            pid = source_holders(workspace).get("files:inbox/*.csv")
            return pid if pid not in (None, holder_pid) else None

        await wait_for(taken_over, "another worker to take the CSV folder over", timeout=15)
        assert time.monotonic() - killed_at <= 10

        total = 3 * PER_KIND

        async def all_settled() -> bool:
            rows = dict(ledger(workspace, "SELECT state, count(*) FROM notifications GROUP BY 1"))
            return sum(rows.values()) == total and not ({"queued", "sending"} & set(rows))

        try:
            await wait_for(all_settled, "all 6,000 notifications to settle", timeout=60)
        except AssertionError as exc:
            rows = ledger(workspace, "SELECT state, count(*) FROM notifications GROUP BY 1")
            raise AssertionError(f"{exc}: {dict(rows)}") from None
        survivors = [w for w in workers if w is not victim]
        for w in survivors:
            assert await w.stop() == 0
    finally:
        for w in workers:
            await w.kill()

    sent = sends_by_phone(sandbox)
    assert max(sent.values()) == 1, "a notification was sent twice"
    doubt = {
        str(r[0]).lstrip("+")
        for r in ledger(workspace, "SELECT recipient FROM notifications WHERE state = 'in_doubt'")
    }
    assert len(doubt) <= IN_FLIGHT  # at most the killed worker's requests in flight
    everyone = {phone(k, i) for k in (1, 2, 3) for i in range(PER_KIND)}
    assert everyone - set(sent) <= doubt, "a notification was lost"
    logs = "".join(w.log_text() for w in survivors)
    if doubt:
        assert "now in doubt" in logs
    rules = dict(ledger(workspace, "SELECT rule_id, count(*) FROM notifications GROUP BY 1"))
    assert rules == {"from-csv": PER_KIND, "from-http": PER_KIND, "from-db": PER_KIND}


def max_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_three_workers_keep_the_channel_rate_and_the_pair_rate(
    workspace: Workspace, sandbox: Running
) -> None:
    write_config(workspace, rate="100/s")
    workspace.write_rule("http.yaml", rule_yaml("from-http", HTTP_TRIGGER, "http"))
    workers = await start_all(workspace, "r")
    # 30 people get 3 messages each (the pair rate), 810 others one: 900 sends.
    events = [{"phone": f"+{phone(4, i % 30)}", "key": f"p{i}", "name": "N"} for i in range(90)] + [
        {"phone": f"+{phone(5, i)}", "key": f"o{i}", "name": "N"} for i in range(810)
    ]
    try:
        for start in range(0, len(events), 100):
            answer = await workers[start // 100 % 3].post_event(
                "/events/w", events[start : start + 100]
            )
            assert answer.status_code == 202, answer.text

        async def all_sent() -> bool:
            return sum(sends_by_phone(sandbox).values()) >= len(events)

        await wait_for(all_sent, "900 sends", timeout=60)
        for w in workers:
            assert await w.stop() == 0
    finally:
        for w in workers:
            await w.kill()
    sends = [
        (str(r.body["phone"]), r.at)  # type: ignore[index]
        for r in list(sandbox.state.requests)
        if r.path.endswith("sendTemplate") and r.status == 200
    ]
    assert len(sends) == len(events)
    times = sorted(at for _, at in sends)
    per_second = Counter(int(t - times[0]) for t in times)
    assert max_in_one_second(times) <= 100, sorted(per_second.items())
    by_phone: dict[str, list[float]] = {}
    for who, at in sends:
        by_phone.setdefault(who, []).append(at)
    gaps = [
        b - a
        for times in by_phone.values()
        for a, b in zip(sorted(times), sorted(times)[1:], strict=False)
    ]
    assert len(gaps) == 60 and min(gaps) >= 6.0
