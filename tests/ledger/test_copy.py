"""``nextstep ledger copy``: a SQLite ledger in every state moves into the real PostgreSQL with
its ids, and the PostgreSQL store then reads and behaves as the SQLite one did."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nextstep.engine.commands.cli import main
from nextstep.engine.ledger import open_copy_source, open_copy_target, open_store
from nextstep.engine.ledger.base import AttemptResult, NewInbound, OptOut, Store
from nextstep.engine.ledger.copying import (
    CopyRefused,
    Row,
    Table,
    TableSource,
    TableTarget,
    copy_ledger,
    lock_path,
    plan,
)
from nextstep.engine.model import InboundMessage, Progress, State
from tests.support.ledgers import PostgresLedgers
from tests.support.notifications import T0, new_notification

pytestmark = pytest.mark.postgres
ALL = State.__members__.values()


def _attempt(nid: int, state: State, **extra: object) -> AttemptResult:
    return AttemptResult(nid, T0 + 1, state, {"kind": str(state)}, attempt=1, **extra)  # type: ignore[arg-type]


def _fill(store: Store) -> dict[str, int]:
    """Notifications in every state, with history, acks, opt-outs, inbound messages, trigger
    progress and rule versions; returns an id by name."""
    store.save_rule_version("loan-docs", "abc123def456", {"id": "loan-docs", "to": "x"})
    names = ["sent", "delivered", "read", "failed", "in_doubt", "sending", "expired"]
    names += ["queued", "cancelled", "superseded"]
    made = store.enqueue(
        [new_notification(f"346000000{i:02d}", dedupe_key=name) for i, name in enumerate(names)]
        # text no PostgreSQL text holds as it is: NUL, and the store's escape character
        + [new_notification("34600000099", event={"note": "a\x00b\uffffc"}, dedupe_key="nul")],
        [Progress("csv:inbox/*.csv:abc", '{"row": 12, "done": false}')],
    )
    ids = dict(zip([*names, "nul"], [m.id for m in made], strict=True))
    late = store.enqueue([new_notification("34600000050", supersede_key="case", dedupe_key="s")])
    ids["superseding"] = late[0].id
    store.enqueue([new_notification("34600000051", supersede_key="case", dedupe_key="s2")])
    ids["duplicate"] = store.enqueue([new_notification("34600000052", dedupe_key="sent")])[0].id
    store.add_optouts([OptOut("34600000077", "*", T0, "cli", "asked")])
    ids["opted_out"] = store.enqueue([new_notification("34600000077", dedupe_key="o")])[0].id
    leased = {n.id for n in store.lease_due(T0 + 1, 100)}
    assert {ids[n] for n in ("sent", "delivered", "read", "failed", "in_doubt")} <= leased
    store.record_attempts(
        [
            _attempt(ids["sent"], State.SENT, provider_id="wamid.sent"),
            _attempt(ids["delivered"], State.SENT, provider_id="wamid.delivered"),
            _attempt(ids["read"], State.SENT, provider_id="wamid.read"),
            _attempt(ids["expired"], State.SENT, provider_id="wamid.expired"),
            _attempt(
                ids["failed"], State.FAILED, reason="invalid phone", failure_class="recipient"
            ),
            _attempt(ids["in_doubt"], State.IN_DOUBT, reason="read timeout"),
        ]
    )
    store.requeue(
        [(n, T0 + 60) for n in leased - {ids[x] for x in names[:5]} - {ids["expired"]}], T0 + 1
    )
    store.lease_due(T0 + 61, 1, ids=[ids["sending"]])  # left in sending, as by a crash
    with store.transaction() as tx:
        tx.set_states(
            [
                (ids["delivered"], State.SENT, State.DELIVERED),
                (ids["read"], State.SENT, State.READ),
            ],
            T0 + 2,
        )
        tx.add_history([(ids["read"], T0 + 2, "ack", {"status": "read"})])
        tx.conclude(
            ids["expired"],
            old=State.SENT,
            new=State.EXPIRED,
            reason="no delivered",
            failure_class=None,
            now=T0 + 3,
        )
        tx.keep_acks([("wamid.unknown", "delivered", {"id": "wamid.unknown"})], T0 + 2)
    assert store.cancel(ids["cancelled"], T0 + 4)
    stored = store.record_inbound(
        [
            NewInbound("whatsapp", InboundMessage(f"in.{i}", "34600000001", f"hi {i}"), T0 + i)
            for i in range(3)
        ]
    )
    assert all(s is not None for s in stored)
    return ids


def _snapshot(store: Store, ids: dict[str, int]) -> dict[str, object]:
    """Everything a user or a worker reads of the ledger."""
    every = sorted(ids.values())
    return {
        "counts": store.counts(),
        "rows": [store.get(n) for n in every],
        "histories": [store.history(n) for n in every],
        "in_doubt": store.list(state=State.IN_DOUBT),
        "optouts": store.optouts(),
        "inbound": store.inbound_after(0, limit=100),
        "progress": store.get_progress("csv:inbox/*.csv:abc"),
        "rule": store.get_rule_version("loan-docs", "abc123def456"),
        "kept_acks": _kept_acks(store),
    }


def _kept_acks(store: Store) -> int:
    with store.transaction() as tx:
        return tx.kept_ack_count()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[tuple[Path, Store, dict[str, int]]]:
    path = tmp_path / "ledger.db"
    store = open_store(f"sqlite:///{path}")
    ids = _fill(store)
    yield path, store, ids
    store.close()


def _copy(*args: str) -> Result:
    return CliRunner().invoke(main, ["ledger", "copy", *args])


def test_every_table_moves_and_postgres_reads_the_same(
    sqlite_ledger: tuple[Path, Store, dict[str, int]], postgres_session: PostgresLedgers
) -> None:
    path, sqlite, ids = sqlite_ledger
    assert {n.state for n in sqlite.list(limit=1000)} == set(ALL)  # every state is there
    before = _snapshot(sqlite, ids)
    url = postgres_session.fresh()
    done = _copy("--from", str(path), "--to", url, "--json", "--batch", "3")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["tables"]["notifications"] == len(sqlite.list(limit=1000))
    assert set(summary["tables"]) >= {"history", "acks", "optouts", "inbound_messages"}
    assert summary["replaced"] is False
    pg = open_store(url)
    try:
        assert _snapshot(pg, ids) == before
        # new rows continue after the copied ids, on both sequences the workers use
        fresh = pg.enqueue([new_notification("34600000088", dedupe_key="new")])[0]
        assert fresh.id > max(ids.values()) and pg.get(fresh.id) is not None
        inbound = pg.record_inbound(
            [NewInbound("whatsapp", InboundMessage("in.new", "34600000001", "again"), T0 + 9)]
        )[0]
        assert inbound is not None and inbound.id > sqlite.last_inbound_id()
        # a dedupe key the SQLite ledger had is still refused, pointing at the copied row
        again = pg.enqueue([new_notification("34600000000", dedupe_key="sent")])[0]
        assert (again.state, again.duplicate_of) == (State.SKIPPED, ids["sent"])
        # the opt-out still stops what it stopped
        stopped = pg.enqueue([new_notification("34600000077", dedupe_key="o2")])[0]
        assert stopped.state is State.SKIPPED and stopped.reason == "opted out"
    finally:
        pg.close()


def test_pruned_inbound_ids_are_not_given_again(
    sqlite_ledger: tuple[Path, Store, dict[str, int]], postgres_session: PostgresLedgers
) -> None:
    path, sqlite, _ = sqlite_ledger
    last = sqlite.last_inbound_id()
    assert sqlite.prune_inbound(T0 + 100) == 3  # an inbound cursor may be at `last` now
    url = postgres_session.fresh()
    assert _copy("--from", f"sqlite:///{path}", "--to", url).exit_code == 0
    pg = open_store(url)
    try:
        stored = pg.record_inbound(
            [NewInbound("whatsapp", InboundMessage("in.9", "34600000001", "later"), T0 + 9)]
        )[0]
        assert stored is not None and stored.id > last
    finally:
        pg.close()


def test_a_target_with_rows_is_refused_unless_replaced(
    sqlite_ledger: tuple[Path, Store, dict[str, int]], postgres_session: PostgresLedgers
) -> None:
    path, sqlite, ids = sqlite_ledger
    url = postgres_session.fresh()
    pg = open_store(url)
    try:
        other = pg.enqueue([new_notification("34600000111", dedupe_key="theirs")])[0]
        refused = _copy("--from", str(path), "--to", url)
        assert refused.exit_code == 1
        assert "already holds rows (tables notifications, packing)" in refused.stderr
        assert "--replace" in refused.stderr
        assert pg.get(other.id) is not None  # untouched
        replaced = _copy("--from", str(path), "--to", url, "--replace", "--json")
        assert replaced.exit_code == 0, replaced.output
        assert json.loads(replaced.stdout)["replaced"] is True
        assert pg.counts() == sqlite.counts()
        assert pg.find(dedupe_key="theirs") == []
    finally:
        pg.close()


def test_a_ledger_a_daemon_holds_is_refused(
    sqlite_ledger: tuple[Path, Store, dict[str, int]], postgres_session: PostgresLedgers
) -> None:
    path, _, _ = sqlite_ledger
    url = postgres_session.fresh()
    with lock_path(path).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running daemon holds it
        refused = _copy("--from", str(path), "--to", url)
        assert refused.exit_code == 1
        assert "a daemon is using the ledger" in refused.stderr
        assert "ledger.db.lock is locked" in refused.stderr
    pg = open_store(url)
    try:
        assert pg.counts() == {}
    finally:
        pg.close()
    # the daemon stopped (the lock file stays, unlocked): the copy goes ahead
    assert _copy("--from", str(path), "--to", url).exit_code == 0


def test_the_summary_names_every_table(
    sqlite_ledger: tuple[Path, Store, dict[str, int]], postgres_session: PostgresLedgers
) -> None:
    path, _, _ = sqlite_ledger
    done = _copy("--from", str(path), "--to", postgres_session.fresh())
    assert done.exit_code == 0, done.output
    assert f"copied {path} into postgresql://" in done.stdout
    for table in ("notifications", "history", "acks", "optouts", "inbound_messages", "progress"):
        assert f"  {table} " in done.stdout
    assert "next: set store: to the PostgreSQL URL" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--from", "postgresql://x@127.0.0.1/a", "--to", "postgresql://x@127.0.0.1/b"],
            "copying from PostgreSQL is not supported",
            id="from-postgres",
        ),
        pytest.param(
            ["--from", "a.db", "--to", "sqlite:///b.db"],
            "the target must be a PostgreSQL ledger",
            id="to-sqlite",
        ),
        pytest.param(["--from", "a.db"], "Missing option '--to'", id="no-target"),
        pytest.param(
            ["--from", "a.db", "--to", "postgresql://x@h/d", "--batch", "0"],
            "--batch",
            id="batch-zero",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = _copy(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_rows_written_after_the_plan_looked_refuse_the_copy(
    sqlite_ledger: tuple[Path, Store, dict[str, int]], postgres_session: PostgresLedgers
) -> None:
    path, _, _ = sqlite_ledger
    url = postgres_session.fresh()
    source, target = open_copy_source(str(path)), open_copy_target(url)
    pg = open_store(url)
    try:
        tables = plan(source, target, replace=False)  # empty when it looked
        pg.enqueue([new_notification("34600000111", dedupe_key="worker")])  # a worker began
        with pytest.raises(CopyRefused, match="received rows"):
            target.load(tables, lambda t: source.batches(t, 100), replace=False)
        assert [n.dedupe_key for n in pg.list()] == ["worker"]
    finally:
        pg.close()
        source.close()
        target.close()


def test_a_missing_source_is_an_error_not_a_new_ledger(
    tmp_path: Path, postgres_session: PostgresLedgers
) -> None:
    result = _copy("--from", str(tmp_path / "none.db"), "--to", postgres_session.fresh())
    assert result.exit_code == 1
    assert f"no SQLite ledger at {tmp_path / 'none.db'}" in result.stderr
    assert not (tmp_path / "none.db").exists()


# -- what may be copied, on in-memory twins of the backends' export and import ---------------
class _Source:
    name = "memory"

    def __init__(self, tables: list[Table], migrations: list[str]) -> None:
        self._tables, self._migrations = tables, migrations

    def migrations(self) -> list[str]:
        return self._migrations

    def tables(self) -> list[Table]:
        return self._tables

    def batches(self, table: Table, size: int) -> Iterator[list[Row]]:
        rows = [(i,) for i in range(table.rows)]
        for start in range(0, len(rows), size):
            yield rows[start : start + size]

    def close(self) -> None:
        pass


class _Target:
    name = "target"

    def __init__(self, columns: dict[str, tuple[str, ...]], migrations: list[str]) -> None:
        self._columns, self._migrations = columns, migrations
        self.rows: dict[str, list[Row]] = {}

    def migrations(self) -> list[str]:
        return self._migrations

    def columns(self) -> dict[str, tuple[str, ...]]:
        return self._columns

    def with_rows(self, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if self.rows.get(t)]

    def load(
        self,
        tables: Sequence[Table],
        rows: Callable[[Table], Iterator[list[Row]]],
        *,
        replace: bool,
    ) -> dict[str, int]:
        for table in tables:
            self.rows[table.name] = [row for batch in rows(table) for row in batch]
        return {table.name: len(self.rows[table.name]) for table in tables}

    def close(self) -> None:
        pass


def test_tables_go_in_dependency_order_then_by_name() -> None:
    names = ["zeta_later", "history", "acks", "notifications", "alpha_later", "progress"]
    source = _Source([Table(n, ("id",), 3, 3) for n in names], ["0001"])
    target = _Target({n: ("id",) for n in names}, ["0001"])
    seen: list[tuple[str, int]] = []
    summary = copy_ledger(source, target, batch=2, on_rows=lambda t, n: seen.append((t, n)))
    order = ["progress", "notifications", "history", "acks", "alpha_later", "zeta_later"]
    assert list(summary.tables) == order
    assert seen[:2] == [("progress", 2), ("progress", 1)]
    assert summary.rows == 18 and target.rows["history"] == [(0,), (1,), (2,)]


@pytest.mark.parametrize(
    ("source_migrations", "columns", "message"),
    [
        pytest.param(
            ["0001", "0002"],
            {"notifications": ("id", "state")},
            "only the source: 0002; only the target: none",
            id="migrations",
        ),
        pytest.param(["0001"], {}, "has no table notifications", id="table"),
        pytest.param(
            ["0001"],
            {"notifications": ("id",)},
            "has no column state in notifications",
            id="column",
        ),
    ],
)
def test_a_copy_that_would_not_be_faithful_is_refused(
    source_migrations: list[str], columns: dict[str, tuple[str, ...]], message: str
) -> None:
    source = _Source([Table("notifications", ("id", "state"), 1, 1)], source_migrations)
    target = _Target(columns, ["0001"])
    with pytest.raises(CopyRefused, match=message):
        copy_ledger(source, target)
    assert target.rows == {}


def test_the_in_memory_twins_are_what_the_backends_are() -> None:
    assert isinstance(_Source([], []), TableSource)
    assert isinstance(_Target({}, []), TableTarget)
