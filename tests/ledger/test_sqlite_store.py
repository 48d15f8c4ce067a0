"""What is SQLite's own: the file in WAL mode, its migrations, URLs and errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.migrations import MIGRATIONS
from nextstep.engine.ledger.sqlite import SqliteStore, migrate
from tests.support.notifications import new_notification


def test_file_store_uses_wal_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.db"
    s = open_store(f"sqlite:///{path}")
    nid = s.enqueue([new_notification("1")])[0].id
    s.close()
    again = open_store(f"sqlite:///{path}")
    try:
        assert again.get(nid) is not None
    finally:
        again.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")]
        assert names == [m.name for m in MIGRATIONS]
    finally:
        conn.close()


def test_migrations_run_once_and_a_failure_leaves_no_trace() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(conn) == [m.name for m in MIGRATIONS]
    assert migrate(conn) == []
    steps = [(m.name, m.sqlite) for m in MIGRATIONS]
    broken = [*steps, ("9999_broken", "CREATE TABLE t (x INT);\nNOT SQL;")]
    with pytest.raises(StoreError, match="9999_broken"):
        migrate(conn, broken)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None
    assert conn.execute("SELECT 1 FROM migrations WHERE name = '9999_broken'").fetchone() is None


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://localhost/x", id="another-database"),
        pytest.param("nextstep.db", id="no-scheme"),
        pytest.param("sqlite:///", id="no-path"),
    ],
)
def test_open_store_rejects_unsupported_urls(url: str) -> None:
    with pytest.raises(StoreError, match="sqlite:///"):
        open_store(url)


def test_an_unopenable_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SqliteStore(str(tmp_path))  # a directory
