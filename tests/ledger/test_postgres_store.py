"""What is PostgreSQL's own: the extra, the URL in messages, migrating (once, concurrently,
atomically), JSON as text, and the config accepting the URL."""

from __future__ import annotations

import json
import secrets
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from nextstep.engine.errors import ConfigError, StoreError
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.migrations import MIGRATIONS
from nextstep.engine.ledger.postgres import PostgresStore, migrate
from nextstep.engine.rules.config import load_config
from tests.support.ledgers import PostgresLedgers, plain_url
from tests.support.notifications import new_notification

pytestmark = pytest.mark.postgres


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("nextstep.engine.ledger.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)  # as if not installed
    with pytest.raises(StoreError, match=r"pip install 'nextstep-whatsapp\[postgres\]'"):
        open_store("postgresql://nextstep@127.0.0.1/ledger")


def test_the_password_stays_out_of_errors() -> None:
    with pytest.raises(StoreError) as raised:
        open_store("postgresql://nextstep:s3cret-pw@127.0.0.1:1/ledger")  # nothing listens
    assert "s3cret-pw" not in str(raised.value)
    assert "postgresql://nextstep:***@127.0.0.1:1/ledger" in str(raised.value)


@pytest.fixture
def empty_database(postgres_url: str) -> Iterator[str]:
    """A database of its own, never migrated."""
    admin = plain_url(postgres_url)
    name = f"nextstep_test_{secrets.token_hex(4)}_m"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield plain_url(postgres_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_concurrent_first_starts_migrate_once(empty_database: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_and_close() -> None:
        start.wait()
        try:
            PostgresStore(empty_database, pool_size=1).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with psycopg.connect(empty_database) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY name")]
    assert names == [m.name for m in MIGRATIONS]


def test_a_failed_migration_leaves_no_trace(empty_database: str) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert migrate(conn) == [m.name for m in MIGRATIONS]
        assert migrate(conn) == []
        steps = [(m.name, m.postgres) for m in MIGRATIONS]
        broken = [*steps, ("9999_broken", "CREATE TABLE t (x int);\nNOT SQL;")]
        with pytest.raises(StoreError, match="9999_broken"):
            migrate(conn, broken)
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
        found = conn.execute("SELECT 1 FROM migrations WHERE name = '9999_broken'").fetchone()
        assert found is None


def test_json_columns_hold_text(postgres_session: PostgresLedgers) -> None:
    url = postgres_session.fresh()
    store = open_store(url)
    event = {"name": "García 🙂", "nul": "\x00", "big": 2**70}
    (row,) = store.enqueue([new_notification("1", event=event, trigger={"file": "añejo.csv"})])
    kept = store.get(row.id)
    store.close()
    assert kept is not None and kept.event == event
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT pg_typeof(packed)::text, event, trigger, packed, sample FROM notifications "
            "JOIN packing USING (rule_id, rule_version) WHERE id = %s",
            (row.id,),
        ).fetchone()
    # Packed (migration 0011): a bytea stream of the JSON text; the text columns are empty.
    assert found is not None and found[:3] == ("bytea", "", "")
    spread = zlib.decompressobj(-12, found[4])
    text = (spread.decompress(found[3][1:]) + spread.flush()).decode()
    assert json.loads(text)[1:] == [event, {"file": "añejo.csv"}]


def test_the_config_accepts_a_postgresql_store(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    config = tmp_path / "nextstep.yaml"
    config.write_text("store: postgresql://nextstep@db.internal:5432/ledger\n", encoding="utf-8")
    assert load_config(config).store == "postgresql://nextstep@db.internal:5432/ledger"
    config.write_text("store: mysql://nextstep@db.internal/ledger\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="postgresql://"):
        load_config(config)
