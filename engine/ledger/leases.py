"""Leases of several workers on one ledger: the records and the one rule of who is gone.

A worker leases due rows under its own id with a lease that runs out (``lease_until``) unless
it renews it; just before a row's request is written the worker marks it (``marked_at``), and
the mark is the fence: a worker sends only rows it could mark, which fails once its lease was
recovered by another. Recovery (at start and periodically) looks only at rows whose lease ran
out or whose owner is known to be gone: a marked row may have reached the provider and becomes
in doubt; an unmarked one never left and is due again. docs/scaling.md tells the whole story.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

LEASE = 30.0  # seconds a lease lasts without renewal; nothing waits longer for a dead worker
RECOVERED_REASON = "interrupted while sending: the provider may have accepted it"


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a recovery did: rows now in doubt (their request may have left) and rows due
    again (leased, never marked)."""

    in_doubt: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One worker's row: who, where, since when, last heartbeat, lease length, what it holds
    (``{"triggers": [...], "channels": [...], "sources": [...]}``), when it stopped (None while
    it runs)."""

    id: str
    host: str
    pid: int
    started_at: float
    last_seen: float
    lease: float
    holds: Mapping[str, Any]
    stopped_at: float | None = None

    def as_dict(self, now: float) -> dict[str, Any]:
        """JSON-ready, with its age and whether it is alive at ``now``."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "last_seen": self.last_seen,
            "seen_ago": round(max(0.0, now - self.last_seen), 3),
            "lease": self.lease,
            "holds": dict(self.holds),
            "stopped_at": self.stopped_at,
            "alive": self.stopped_at is None and now - self.last_seen <= self.lease,
        }


def new_worker_id() -> str:
    """A worker id that never repeats: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def this_host() -> str:
    """The name a worker records as its host."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0 probes without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def gone(
    workers: Sequence[WorkerRecord],
    now: float,
    *,
    host: str,
    me: str,
    alive: Callable[[int], bool] = pid_alive,
) -> list[str]:
    """The ids of workers known to be gone: stopped, silent longer than their lease, or on
    this host with no process of their pid any more (a crash followed by a restart need not
    wait for the lease). Never ``me``."""
    out = []
    for w in workers:
        if w.id == me:
            continue
        if (
            w.stopped_at is not None
            or now - w.last_seen > w.lease
            or (w.host == host and not alive(w.pid))
        ):
            out.append(w.id)
    return out


class SourceLock(Protocol):
    """The lock of one trigger source (a folder of files, a polled table): held by one worker at a
    time; on PostgreSQL a session-level advisory lock on a connection of its own, so it ends
    when its worker dies, however it dies. Blocking calls: run them off the event loop."""

    def acquire(self) -> bool:
        """Take it if free (never waits); True when held (also when already held)."""
        ...

    def alive(self) -> bool:
        """Whether it is still held (its connection still works)."""
        ...

    def close(self) -> None:
        """Release it and its connection (idempotent)."""
        ...


class SoleSourceLock:
    """The lock of a ledger only one daemon uses (SQLite: the ledger's file lock sees to
    that): always held."""

    def acquire(self) -> bool:
        """Always True."""
        return True

    def alive(self) -> bool:
        """Always True."""
        return True

    def close(self) -> None:
        """Nothing to release."""


def source_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for a source name, the same in every process."""
    digest = hashlib.sha256(f"nextstep source {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
