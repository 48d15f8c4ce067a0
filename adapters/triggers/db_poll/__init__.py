"""The ``db_poll`` trigger: rows of a database query become events, read with a moving cursor.

::

    trigger:
      db_poll:
        url: postgresql+psycopg://reader@db/crm    # any SQLAlchemy URL; sqlite:///crm.db
                                                   # is relative to the config's folder
        query: >
          SELECT id, updated_at, first_name, phone, stage FROM applications
          WHERE updated_at > :cursor OR (updated_at = :cursor AND id > :cursor_id)
          ORDER BY updated_at, id
          LIMIT :batch
        cursor: updated_at      # the column the query orders by
        id: id                  # the tie-break column, for rows sharing a cursor value
        every: 10s              # how often to look
        delay: 5s               # rows newer than now - delay are left for a later poll
        batch: 500              # rows per poll and per ledger transaction
        start: now              # first cursor: now | beginning | an ISO time | a number
        timezone: UTC           # the zone of the database's naive timestamps
        name: crm-applications  # optional: keeps the cursor when the query is edited

What the query must contain: the bound parameter ``:cursor`` (and ``:cursor_id`` when ``id``
is set) in a condition that selects rows strictly after the pair (cursor, id), e.g. the
portable ``col > :cursor OR (col = :cursor AND id > :cursor_id)`` or the row value
``(col, id) > (:cursor, :cursor_id)`` (PostgreSQL, MariaDB, SQLite); ``ORDER BY col, id``;
and, to keep each poll small, ``LIMIT :batch``. Only the first ``batch`` rows are read.
On the very first poll ``:cursor_id`` is NULL, so rows exactly at ``start`` are not read.

The cursor is the last row's (cursor, id) pair, committed in the ledger with the notifications
of its batch: it survives restarts, and no row is skipped or repeated. Values only ever reach
the database as bound parameters. The query runs in a read-only transaction that is rolled back.
A database that cannot be reached is retried with backoff and reported by :meth:`status`.
"""

from nextstep.adapters.triggers.db_poll.trigger import DbPollTrigger
from nextstep.adapters.triggers.db_poll.values import (
    PollError,
    dump_value,
    jsonable,
    load_value,
    retry_delay,
    sqlite_in_folder,
)

__all__ = [
    "DbPollTrigger",
    "PollError",
    "dump_value",
    "jsonable",
    "load_value",
    "retry_delay",
    "sqlite_in_folder",
]
