"""A large ledger for bench/console.py: ``rows`` notifications over ``days`` days, with the
history lines a real run writes (created, attempt, acks, state changes, fallbacks).

Written with plain SQL (SQLite) or COPY (PostgreSQL) into a ledger the store has migrated (the
generator is a benchmark's fixture, not a way to fill a production ledger), deterministic for
a given seed.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from nextstep.engine.ledger import open_store

RULES = ("loan-docs-required", "loan-approved", "appointment-reminder", "case-closed", "survey")
# State shares of the generated notifications (the rest are read).
SHARES = (
    ("delivered", 0.25),
    ("sent", 0.05),
    ("failed", 0.05),
    ("expired", 0.03),
    ("skipped", 0.05),
    ("in_doubt", 0.003),
    ("queued", 0.01),
    ("cancelled", 0.002),
)
TEXT = 'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>'
_COLUMNS = (
    "id, rule_id, rule_version, channel, recipient, fields, event, trigger, state, created_at, "
    "updated_at, dedupe_key, provider_id, expect, reason, failure_class, parent_id, fallback_step"
)
_INSERT = f"INSERT INTO notifications ({_COLUMNS}) VALUES ({', '.join('?' * 18)})"
_HISTORY = "INSERT INTO history (notification_id, at, kind, detail) VALUES (?, ?, ?, ?)"
CHUNK = 50_000


def _state(rng: random.Random) -> str:
    roll = rng.random()
    for state, share in SHARES:
        if roll < share:
            return state
        roll -= share
    return "read"


def _history(nid: int, state: str, at: float, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    yield (nid, at, "created", "{}")
    if state in ("queued", "skipped", "cancelled"):
        return
    outcome = {"kind": "accepted", "provider_id": f"wamid.{nid}", "http_status": 201}
    sent = at + rng.uniform(0.05, 2.0)
    detail = {"attempt": 1, "state": "sent", "outcome": outcome}
    if state == "in_doubt":
        yield (nid, sent, "attempt", json.dumps({**detail, "state": "in_doubt"}))
        return
    yield (nid, sent, "attempt", json.dumps(detail))
    if state in ("delivered", "read"):
        yield (
            nid,
            sent + rng.uniform(1, 30),
            "ack",
            '{"status": "delivered", "source": "webhook"}',
        )
    if state == "read":
        yield (nid, sent + rng.uniform(30, 900), "ack", '{"status": "read", "source": "webhook"}')
    if state == "failed":
        ack = {"status": "failed", "source": "webhook", "code": 131026, "error": "undeliverable"}
        yield (nid, sent + 5, "ack", json.dumps(ack))
        yield (nid, sent + 5, "state", '{"state": "failed", "reason": "failed ack: undeliverable"}')
    if state == "expired":
        yield (nid, sent + 900, "state", '{"state": "expired", "reason": "not delivered in 15m"}')


def _row(nid: int, at: float, rng: random.Random) -> tuple[tuple[Any, ...], str]:
    rule = RULES[nid % len(RULES)]
    state = _state(rng)
    phone = f"346{rng.randrange(10**8):08d}"
    params = ["Maria", f"loan application #{nid}", "upload documents by June 20"]
    fields = {
        "template": "next_step",
        "namespace": "ns",
        "language": "en",
        "text": TEXT,
        "params": params,
    }
    event = {"first_name": "maria", "application_id": nid, "phone": phone, "stage": "docs"}
    reason = {"skipped": f"duplicate of #{max(1, nid - 7)}", "failed": "failed ack"}.get(state, "")
    sent = state not in ("queued", "skipped", "cancelled")
    row = (
        nid,
        rule,
        "a1b2c3d4e5f6",
        "main",
        phone,
        json.dumps(fields),
        json.dumps(event),
        '{"kind": "http", "source": "/events/loans"}',
        state,
        at,
        at + 1,
        f"{nid}:docs",
        f"wamid.{nid}" if sent else None,
        "delivered",
        reason,
        "recipient" if state == "failed" else None,
        None,
        None,
    )
    return row, state


def chunks(
    rows: int, days: float, now: float, seed: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """(notifications, history lines) of ``rows`` notifications created evenly over the
    ``days`` before ``now``, CHUNK at a time."""
    rng = random.Random(seed)
    span = days * 86400.0
    for start in range(1, rows + 1, CHUNK):
        notes: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        for nid in range(start, min(rows + 1, start + CHUNK)):
            at = now - span + span * (nid / rows) - 1.0
            row, state = _row(nid, at, rng)
            notes.append(row)
            history.extend(_history(nid, state, at, rng))
        yield notes, history


def _definition() -> str:
    return json.dumps({"id": RULES[0], "send": {"channel": "main"}})


def build_sqlite(path: Path, rows: int, *, days: float, now: float, seed: int = 7) -> None:
    """Write ``rows`` notifications created evenly over the ``days`` before ``now``."""
    open_store(f"sqlite:///{path}").close()  # the schema, migrated as the daemon would
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    for rule in RULES:
        conn.execute(
            "INSERT OR IGNORE INTO rule_versions VALUES (?, ?, ?)",
            (rule, "a1b2c3d4e5f6", _definition()),
        )
    for notes, history in chunks(rows, days, now, seed):
        conn.execute("BEGIN")
        conn.executemany(_INSERT, notes)
        conn.executemany(_HISTORY, history)
        conn.execute("COMMIT")
    conn.close()


def build_postgres(url: str, rows: int, *, days: float, now: float, seed: int = 7) -> None:
    """The same in the (empty) PostgreSQL database at ``url``, then VACUUM ANALYZE (index-only
    scans need the visibility map a real ledger's autovacuum keeps)."""
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE notifications, history, acks, progress, rule_versions CASCADE")
        for rule in RULES:
            conn.execute(
                "INSERT INTO rule_versions VALUES (%s, %s, %s)",
                (rule, "a1b2c3d4e5f6", _definition()),
            )
        for notes, history in chunks(rows, days, now, seed):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY notifications ({_COLUMNS}) FROM STDIN") as copy:
                    for row in notes:
                        copy.write_row(row)
                with cur.copy(
                    "COPY history (notification_id, at, kind, detail) FROM STDIN"
                ) as copy:
                    for line in history:
                        copy.write_row(line)
        conn.execute("SELECT setval('notifications_id_seq', %s)", (rows,))
        conn.execute("VACUUM ANALYZE notifications")
        conn.execute("VACUUM ANALYZE history")
