"""One daemon per SQLite ledger (issue 15 defect 1): ``nextstep run`` takes an exclusive lock
on ``<ledger>.lock`` before anything else touches the ledger, and refuses to start while
another process holds it.

``fcntl.flock`` rather than a pid file: the kernel drops the lock when its holder dies, however
it dies (SIGKILL included), so a crashed daemon never blocks the next one, and two processes
can never both believe they hold it. The file keeps the holder's pid for the message. A
PostgreSQL ledger takes no lock here: several workers share it through leases
(engine/ledger/leases.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from nextstep.engine.errors import NextstepError

EXIT_BUSY = 3  # ``nextstep run``'s exit code when another daemon holds the ledger


class LedgerBusy(NextstepError):
    """Another process holds the ledger's lock."""


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` ledger URL; None for another store or ``:memory:``."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


@contextlib.contextmanager
def exclusive_ledger(url: str) -> Iterator[Path | None]:
    """Hold the ledger's lock for the block (nothing for a ledger that needs none); raises
    :class:`LedgerBusy` naming the holder's pid when another process has it."""
    ledger = sqlite_file(url)
    if ledger is None:
        yield None
        return
    lock = ledger.with_name(ledger.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            raise LedgerBusy(
                f"another nextstep run (pid {holder}) is using the ledger {ledger} "
                f"(lock {lock}): stop it first; one daemon per SQLite ledger "
                "(use a PostgreSQL ledger to run several workers, docs/scaling.md)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        os.close(fd)  # releases the lock
