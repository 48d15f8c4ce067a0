"""WAL checkpoints stay off the enqueue path (issue 13, item 5): the writer connection never
checkpoints (``wal_autocheckpoint`` 0), the checkpointer thread does, and the WAL stays bounded."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from nextstep.engine.ledger.sqlite import SqliteStore
from nextstep.engine.ledger.sqlite.checkpoint import CheckpointPolicy
from tests.support.notifications import new_notification

WAL_BYTES = 256 * 1024


def _fill(store: SqliteStore, batches: int, start: int = 0, size: int = 100) -> None:
    for b in range(batches):
        store.enqueue(
            [new_notification(f"{start + b}-{i}", event={"pad": "x" * 400}) for i in range(size)]
        )


def test_the_writer_connection_never_checkpoints(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "l.db"), CheckpointPolicy(wal_bytes=WAL_BYTES, every=3600))
    try:
        with store.reading() as tx:
            conn = tx.connection  # the writer's own connection
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == WAL_BYTES
    finally:
        store.close()


def test_the_checkpointer_keeps_the_wal_bounded(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = SqliteStore(str(path), CheckpointPolicy(wal_bytes=WAL_BYTES, every=3600))
    checkpointer = store.checkpointer
    assert checkpointer is not None
    try:
        largest = 0
        for round_ in range(200):
            _fill(store, 1, start=round_, size=20)  # well under WAL_BYTES of WAL a round
            assert checkpointer.wait_round()
            largest = max(largest, os.stat(str(path) + "-wal").st_size)
        assert checkpointer.checkpoints > 0
        # Without checkpoints the WAL would hold everything written (> 2 MB: see below).
        assert largest < 4 * WAL_BYTES
        assert store.queue_depth(now=1e12) == 200 * 20
    finally:
        store.close()


def test_without_the_checkpointer_the_writer_would_not_reset_the_wal(tmp_path: Path) -> None:
    # The contrast that makes the test above mean something: the same writes with no
    # checkpoint anywhere leave every frame in the WAL.
    path = tmp_path / "l.db"
    store = SqliteStore(str(path), None)
    try:
        with store.reading() as tx:
            tx.connection.execute("PRAGMA wal_autocheckpoint = 0")
        _fill(store, 40)
        assert os.stat(str(path) + "-wal").st_size > 8 * WAL_BYTES
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM notifications").fetchone()[0] == 4000
    finally:
        conn.close()


def test_pruned_pages_go_back_to_the_file_system(tmp_path: Path) -> None:
    # A new ledger is made with auto_vacuum = INCREMENTAL; retention's reclaim_space gives
    # the pages of pruned rows back, so the file shrinks.
    path = tmp_path / "l.db"
    store = SqliteStore(str(path))
    try:
        with store.reading() as tx:
            assert tx.connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        _fill(store, 80)  # packed rows are small (0011): enough that they outweigh the schema
        with store.transaction() as tx:
            tx.connection.execute("DELETE FROM history")
            tx.connection.execute("DELETE FROM notifications")
        full = _pages(store)
        store.reclaim_space()
        assert _pages(store) < full / 4
    finally:
        store.close()


def _pages(store: SqliteStore) -> int:
    with store.reading() as tx:
        return int(tx.connection.execute("PRAGMA page_count").fetchone()[0])


def test_a_wal_past_the_hard_limit_is_cut_back(tmp_path: Path) -> None:
    # A WAL the writer never got to start again (as under a bulk ingest) is truncated by the
    # checkpointer once it passes hard_bytes, instead of growing with every batch.
    path = tmp_path / "l.db"
    policy = CheckpointPolicy(wal_bytes=64 * 2**20, every=3600, hard_bytes=WAL_BYTES)
    store = SqliteStore(str(path), policy)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    try:
        # Twice the limit in WAL; each commit nudges the checkpointer, which may cut the WAL
        # back during the fill already (on a busy machine it does), so look at the end.
        _fill(store, 20)
        assert checkpointer.wait_round()
        assert os.stat(str(path) + "-wal").st_size < WAL_BYTES
        assert checkpointer.checkpoints >= 2  # PASSIVE, then TRUNCATE: it was past the limit
    finally:
        store.close()
