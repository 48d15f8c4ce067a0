"""The ledger's size per notification (issue 13, "Footprint"): notifications of a CSV export
like bench/csv_ingest.py's, queued, cost at most a bound in the file (SQLite) or the tables and
their indexes (PostgreSQL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import NewNotification
from tests.support.ledgers import PostgresLedgers
from tests.support.notifications import T0

ROWS = 2_000
SQLITE_BOUND = 400  # bytes per notification (issue 13); ~380 here, ~392 in bench/csv_ingest.py
POSTGRES_BOUND = 560  # ~500 here and in a 37,500-row ingest (tuple headers, aligned doubles)
NAMES = ["maria", "ana", "jose", "lucia", "pablo", "carmen", "javier", "elena", "david", "sara"]
TEXT = 'Hello, {0}! For your process "{1}", the next step is: {2}'


def _item(i: int) -> NewNotification:
    """The notification bench/csv_ingest.py's rule makes of row ``i`` of its export."""
    name, app = NAMES[i % len(NAMES)], 100_000 + i
    phone = f"34 6{(i * 7_919_111) % 10**8:08d}"
    params = [name.title(), f"loan application #{app}", "upload documents by June 20"]
    fields = {
        "template": "next_step",
        "namespace": "3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de",
        "language": "en",
        "params": params,
        "text": TEXT.format(*params),
    }
    event = {
        "first_name": name,
        "last_name": "García",
        "application_id": str(app),
        "stage": "docs_required",
        "due_date": "June 20",
        "phone": f"+{phone}",
        "email": f"{name}{i}@example.com",
        "notes": "called; will send documents",
    }
    trigger = {"kind": "csv", "source": "inbox/*.csv", "file": "export.csv", "row": i, "line": i}
    return NewNotification(
        rule_id="loan-docs",
        rule_version="e4882b313d32",
        channel="whatsapp",
        recipient=phone.replace(" ", ""),
        fields=fields,
        event=event,
        trigger=trigger,
        created_at=T0 + i / 100,
        dedupe_key=f"{app}:docs_required",
    )


def _fill(url: str, first: int = 0) -> None:
    store = open_store(url)
    try:
        for start in range(first, first + ROWS, 500):
            store.enqueue([_item(i) for i in range(start, start + 500)])
    finally:
        store.close()


def _pages(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("PRAGMA page_count").fetchone()[0]) * int(
            conn.execute("PRAGMA page_size").fetchone()[0]
        )


def test_a_sqlite_ledger_keeps_a_notification_in_few_bytes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    open_store(f"sqlite:///{path}").close()
    empty = _pages(path)  # a page for each table and index before any row
    _fill(f"sqlite:///{path}")
    per_notification = (_pages(path) - empty) / ROWS
    assert per_notification <= SQLITE_BOUND


@pytest.mark.postgres
def test_a_postgres_ledger_keeps_a_notification_in_few_bytes(
    postgres_session: PostgresLedgers,
) -> None:
    url = postgres_session.fresh()
    sizes = []
    for first in (0, ROWS):  # what the second ROWS add: without each index's first pages
        _fill(url, first)
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size('notifications') "
                "+ pg_total_relation_size('history') + pg_total_relation_size('packing')"
            ).fetchone()
        assert row is not None
        sizes.append(int(row[0]))
    assert (sizes[1] - sizes[0]) / ROWS <= POSTGRES_BOUND
