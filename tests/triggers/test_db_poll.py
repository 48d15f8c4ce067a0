"""The db_poll trigger against SQLite, the real PostgreSQL and the real MariaDB."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from nextstep.adapters.triggers.db_poll import (
    DbPollTrigger,
    dump_value,
    jsonable,
    load_value,
    retry_delay,
    sqlite_in_folder,
)
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError
from tests.support.fake_emit import FakeEmit, fake_context
from tests.support.waiting import until
from tests.triggers.databases import Table, TcpProxy
from tests.triggers.waiting import running


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Table]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue(f"{request.param}_url")
    created = Table(url)
    yield created
    created.drop()


def at(clock: FakeClock, seconds_ago: float) -> dt.datetime:
    """A naive UTC time ``seconds_ago`` before the fake now, as the database stores it."""
    return dt.datetime.fromtimestamp(clock.now() - seconds_ago, dt.UTC).replace(tzinfo=None)


def poller(table: Table, clock: FakeClock, emit: FakeEmit, **config: Any) -> DbPollTrigger:
    settings = {
        "url": table.url,
        "query": table.query(),
        "cursor": "updated_at",
        "id": "id",
        "every": "10s",
        "batch": 2,
        "start": "beginning",
        **config,
    }
    return DbPollTrigger(settings, fake_context(emit, "/", clock))


def ids(emit: FakeEmit) -> list[int]:
    return [int(d["id"]) for d in emit.data()]


def waiting(clock: FakeClock, emit: FakeEmit, events: int) -> Any:
    """The trigger has emitted ``events`` events and sleeps until its next poll."""
    return lambda: len(emit.events) == events and clock.sleepers == 1


def polled(trigger: DbPollTrigger, clock: FakeClock) -> Any:
    """The trigger has polled at the current (fake) time and sleeps again."""
    return lambda: trigger.status()["last_poll_at"] == clock.now() and clock.sleepers == 1


async def test_rows_sharing_a_timestamp_are_neither_skipped_nor_repeated(
    table: Table, clock: FakeClock
) -> None:
    same, later = at(clock, 600), at(clock, 599)
    table.insert(*[(i, same, f"p{i}", f"+3460000000{i}") for i in range(1, 6)])
    table.insert((6, later, "p6", "+346000006"), (7, later, "p7", "+346000007"))
    emit = FakeEmit()
    trigger = poller(table, clock, emit)
    async with running(trigger, emit):
        await until(waiting(clock, emit, 7))
        assert [len(events) for events, _ in emit.batches] == [2, 2, 2, 1]
        table.insert((8, later, "p8", "+346000008"), (9, at(clock, 1), "p9", "+346000009"))
        clock.advance(10)
        await until(waiting(clock, emit, 9))
    assert ids(emit) == list(range(1, 10))
    first = emit.events[0]
    assert first.data["first_name"] == "p1" and first.data["phone"] == "+34600000001"
    assert first.trigger["kind"] == "db_poll" and first.trigger["id"] == 1
    status = trigger.status()
    assert status["state"] == "ok" and status["rows_read"] == 9
    assert status["last_poll_at"] == clock.now()


async def test_the_cursor_survives_a_restart(table: Table, clock: FakeClock) -> None:
    table.insert(*[(i, at(clock, 100 - i), f"p{i}", "+34600000000") for i in range(1, 4)])
    emit = FakeEmit()
    async with running(poller(table, clock, emit), emit):
        await until(waiting(clock, emit, 3))
    table.insert((4, at(clock, 97), "p4", "+34600000000"), (5, at(clock, 50), "p5", "+34600"))
    async with running(poller(table, clock, emit), emit):  # a new process, same ledger
        await until(waiting(clock, emit, 5))
    assert ids(emit) == [1, 2, 3, 4, 5]
    assert list(emit.progress) == [f"db_poll:{DbPollTrigger.source_key(poller_config(table))}"]


def poller_config(table: Table) -> dict[str, Any]:
    return {"url": table.url, "query": table.query(), "cursor": "updated_at", "id": "id"}


async def test_rows_newer_than_the_delay_wait_for_a_later_poll(
    table: Table, clock: FakeClock
) -> None:
    table.insert((1, at(clock, 100), "old", "1"), (2, at(clock, 10), "fresh", "2"))
    emit = FakeEmit()
    trigger = poller(table, clock, emit, delay="30s", batch=10)
    async with running(trigger, emit):
        await until(waiting(clock, emit, 1))
        clock.advance(10)  # 20 s old now: still inside the delay
        await until(polled(trigger, clock))
        assert ids(emit) == [1]
        clock.advance(10)
        await until(waiting(clock, emit, 2))
    assert ids(emit) == [1, 2]


async def test_start_now_reads_only_rows_after_the_first_poll(
    tmp_path: Path, clock: FakeClock
) -> None:
    table = Table(f"sqlite:///{tmp_path / 'crm.db'}")
    table.insert((1, at(clock, 3600), "history", "1"))
    emit = FakeEmit()
    trigger = poller(table, clock, emit, start="now")
    async with running(trigger, emit):
        await until(polled(trigger, clock))
        table.insert((2, at(clock, -5), "new", "2"))
        clock.advance(10)
        await until(waiting(clock, emit, 1))
    assert ids(emit) == [2]
    table.drop()


@pytest.mark.parametrize(
    "service",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
async def test_a_database_outage_is_retried_and_reported(
    request: pytest.FixtureRequest, service: str, clock: FakeClock
) -> None:
    direct = sa.make_url(request.getfixturevalue(f"{service}_url"))
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 0)
    await proxy.start()
    table = Table(direct.render_as_string(hide_password=False))
    try:
        table.url = direct.set(port=proxy.port).render_as_string(hide_password=False)
        table.insert((1, at(clock, 60), "a", "1"))
        emit = FakeEmit()
        trigger = poller(table, clock, emit)
        async with running(trigger, emit):
            await until(waiting(clock, emit, 1))
            await proxy.stop()
            table.insert((2, at(clock, 30), "b", "2"))
            clock.advance(10)
            await until(lambda: trigger.status()["failures"] == 1 and clock.sleepers == 1)
            status = trigger.status()
            assert status["state"] == "error" and "OperationalError" in status["last_error"]
            clock.advance(retry_delay(1, 10))
            await until(lambda: trigger.status()["failures"] == 2 and clock.sleepers == 1)
            await proxy.start()
            clock.advance(retry_delay(2, 10))
            await until(waiting(clock, emit, 2))
        assert ids(emit) == [1, 2]
        assert trigger.status()["state"] == "ok" and trigger.status()["failures"] == 0
    finally:
        await proxy.stop()
        table.drop()


@pytest.mark.postgres
async def test_the_query_runs_read_only(postgres_url: str, clock: FakeClock) -> None:
    table = Table(postgres_url)
    try:
        table.insert((1, at(clock, 60), "a", "1"))
        query = (
            f"WITH gone AS (DELETE FROM {table.name} RETURNING *) SELECT * FROM gone "
            "WHERE updated_at > :cursor OR (updated_at = :cursor AND id > :cursor_id) "
            "ORDER BY updated_at, id LIMIT :batch"
        )
        emit = FakeEmit()
        trigger = poller(table, clock, emit, query=query)
        async with running(trigger, emit):
            await until(lambda: trigger.status()["failures"] == 1 and clock.sleepers == 1)
        assert "read-only transaction" in trigger.status()["last_error"]
        assert table.count() == 1 and emit.events == []
    finally:
        table.drop()


async def test_values_only_reach_the_database_as_bound_parameters(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite:///{tmp_path / 'codes.db'}"
    engine = sa.create_engine(url)
    codes = ["a'1", "b'); DROP TABLE codes; --", 'c"3']
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE codes (code TEXT PRIMARY KEY, phone TEXT)")
        for code in codes:
            conn.execute(sa.text("INSERT INTO codes VALUES (:c, '1')"), {"c": code})
    engine.dispose()
    config = {
        "url": url,
        "cursor": "code",
        "every": "1s",
        "batch": 1,
        "start": 0,
        "query": "SELECT code, phone FROM codes WHERE code > :cursor ORDER BY code LIMIT :batch",
    }
    emit = FakeEmit()
    async with running(DbPollTrigger(config, fake_context(emit, "/", clock)), emit):
        await until(waiting(clock, emit, 3))
    assert [d["code"] for d in emit.data()] == codes


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        pytest.param({"query": "SELECT * FROM t"}, "query", ":cursor", id="no-cursor"),
        pytest.param(
            {"query": "SELECT * FROM t WHERE a > :cursor"}, "query", ":cursor_id", id="no-cursor-id"
        ),
        pytest.param(
            {"query": "DELETE FROM t WHERE a > :cursor AND b > :cursor_id"},
            "query",
            "SELECT",
            id="not-select",
        ),
        pytest.param({"timezone": "Mars/Olympus"}, "timezone", "time zone", id="timezone"),
        pytest.param({"start": "yesterday"}, "start", "ISO time", id="start"),
        pytest.param({"start": ""}, "start", "ISO time", id="empty-start"),
        pytest.param({"url": "not a url"}, "url", "SQLAlchemy URL", id="url"),
        pytest.param({"every": "often"}, "every", "duration", id="every"),
        pytest.param({"batch": 0}, "batch", "at least 1", id="batch"),
    ],
)
def test_config_problems(change: dict[str, Any], path: str, message: str) -> None:
    config = {
        "url": "sqlite:///x.db",
        "cursor": "updated_at",
        "id": "id",
        "query": "SELECT * FROM t WHERE (updated_at, id) > (:cursor, :cursor_id)",
        **change,
    }
    with pytest.raises(ConfigError) as caught:
        DbPollTrigger(config, fake_context(FakeEmit(), "/"))
    problem = caught.value.problems[0]
    assert problem.path == f"trigger.db_poll.{path}" and message in problem.message


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 6, 1, 10, 0, 0, 123456),
        dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC),
        dt.date(2026, 6, 1),
        Decimal("12.50"),
        UUID("12345678-1234-5678-1234-567812345678"),
        17,
        1.5,
        "2026-06-01 10:00:00",
        None,
    ],
    ids=repr,
)
def test_cursor_values_round_trip_with_their_type(value: object) -> None:
    import json

    back = load_value(json.loads(json.dumps(dump_value(value))))
    assert back == value and type(back) is type(value)


def test_event_values_are_json() -> None:
    assert jsonable(Decimal("12.50")) == 12.5 and jsonable(Decimal("3")) == 3
    assert jsonable(dt.date(2026, 6, 20)) == "2026-06-20"
    assert jsonable(b"\x01\xff") == "01ff"


def test_retries_back_off_up_to_five_minutes() -> None:
    assert [retry_delay(n, 10) for n in (1, 2, 3, 6, 20)] == [10, 20, 40, 300, 300]
    assert retry_delay(3, 600) == 600


async def test_a_relative_sqlite_file_is_read_from_the_config_folder(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir, elsewhere = tmp_path / "config", tmp_path / "elsewhere"
    config_dir.mkdir()
    elsewhere.mkdir()
    table = Table(f"sqlite:///{config_dir / 'crm.db'}")
    table.insert((1, at(clock, 60), "p1", "+34600000001"))
    monkeypatch.chdir(elsewhere)  # the daemon's working directory is not the config's folder
    emit = FakeEmit()
    settings = {**poller_config(table), "url": "sqlite:///crm.db", "start": "beginning"}
    async with running(DbPollTrigger(settings, fake_context(emit, str(config_dir), clock)), emit):
        await until(waiting(clock, emit, 1))
    table.drop()
    assert ids(emit) == [1]
    assert not (elsewhere / "crm.db").exists()


@pytest.mark.parametrize(
    ("url", "database"),
    [
        pytest.param("sqlite:///crm.db", "/cfg/crm.db", id="relative"),
        pytest.param("sqlite+pysqlite:///data/crm.db", "/cfg/data/crm.db", id="subfolder"),
        pytest.param("sqlite:////srv/crm.db", "/srv/crm.db", id="absolute"),
        pytest.param("sqlite:///:memory:", ":memory:", id="memory"),
        pytest.param("sqlite://", None, id="memory-default"),
        pytest.param("sqlite:///file:crm.db?mode=ro&uri=true", "file:crm.db", id="uri"),
        pytest.param("postgresql://u@db/crm", "crm", id="not-sqlite"),
    ],
)
def test_sqlite_urls_resolve_against_the_config_folder(url: str, database: str | None) -> None:
    given = sa.make_url(url)
    resolved = sqlite_in_folder(given, "/cfg")
    assert resolved.database == database
    assert resolved.query == given.query


async def test_rows_that_fail_to_render_are_counted_and_logged(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from nextstep.engine.metrics import REGISTRY
    from tests.support.fake_emit import errors_when

    table = Table(f"sqlite:///{tmp_path / 'crm.db'}")
    table.insert(
        (1, at(clock, 60), "ana", "+34 600 111 222"),
        (2, at(clock, 50), "bad", "+34 600 333 444"),
        (3, at(clock, 40), "cy", "+34600000003"),
    )
    caplog.set_level(logging.INFO, "nextstep.adapters.triggers")
    emit = FakeEmit(errors_when("first_name", "bad", "to: '+34 600 333 444' is not a number"))
    trigger = poller(table, clock, emit, batch=10)
    source = trigger.source

    def count() -> float:
        labels = {"trigger": source, "reason": "render_error"}
        return REGISTRY.get_sample_value("nextstep_events_refused_total", labels) or 0.0

    before = count()
    async with running(trigger, emit):
        await until(waiting(clock, emit, 3))
    assert count() == before + 1
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "row id=2" in line and "3444" in line and "333 444" not in line
