"""What the SQLite ledger modules share: history lines, placeholders (rows: ledger.rows)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from nextstep.engine.ledger.codec import dumps
from nextstep.engine.ledger.rows import COLUMNS, to_history, to_notification

__all__ = ["COLUMNS", "add_history", "placeholders", "to_history", "to_notification"]


def add_history(
    conn: sqlite3.Connection, lines: Iterable[tuple[int, float, str, Mapping[str, Any]]]
) -> None:
    """Append history lines ``(notification_id, at, kind, detail)`` in one statement."""
    conn.executemany(
        "INSERT INTO history (notification_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        ((nid, at, kind, dumps(detail)) for nid, at, kind, detail in lines),
    )


def placeholders(count: int) -> str:
    """``?, ?, ?`` for ``count`` parameters."""
    return ", ".join("?" * count)
