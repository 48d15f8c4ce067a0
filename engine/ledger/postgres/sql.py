"""What every PostgreSQL ledger module shares: the connection type, arrays, history lines.

Batches travel as one array per column and come apart with ``unnest``: one statement whatever
the batch's size, with the same text each time (so it is prepared once per connection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

from psycopg import Connection

from nextstep.engine.ledger.base import HistoryLine
from nextstep.engine.ledger.codec import dumps

Conn: TypeAlias = Connection[tuple[Any, ...]]

_HISTORY = (
    "INSERT INTO history (notification_id, at, kind, detail) "
    "SELECT id, at, kind, detail FROM unnest(%b::bigint[], %b::float8[], %b::text[], %b::text[]) "
    "WITH ORDINALITY AS h(id, at, kind, detail, n) ORDER BY n"
)


def real(value: float | None) -> float | None:
    """A time or duration for a ``float8[]`` column: an array takes one Python type, and
    callers may give an int (``within=900``)."""
    return None if value is None else float(value)


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """The columns of ``rows`` (each ``width`` long), one list each, for ``unnest``."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def add_history(conn: Conn, lines: Iterable[HistoryLine]) -> None:
    """Append history lines ``(notification_id, at, kind, detail)``, in order, in one statement."""
    add_history_text(
        conn, [(nid, float(at), kind, dumps(detail)) for nid, at, kind, detail in lines]
    )


def add_history_text(conn: Conn, rows: Sequence[tuple[int, float, str, str]]) -> None:
    """:func:`add_history` of lines whose detail is JSON text already (``at`` a float)."""
    if rows:
        conn.execute(_HISTORY, columns(rows, 4))


def unique(ids: Sequence[int]) -> bool:
    """True when no id repeats (one set-based statement then does what one-by-one would)."""
    return len(set(ids)) == len(ids)
