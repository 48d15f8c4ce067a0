"""WAL checkpoints off the write path: the writer never copies the WAL into the database.

SQLite's default (``wal_autocheckpoint = 1000`` pages) makes the connection that commits past
1000 pages run the checkpoint inside its commit: copying the WAL and an fsync, measured at
115 ms on a busy host, stalled one enqueue that long (issue 13). The ledger's writer
connection turns that off (``wal_autocheckpoint = 0``) and a :class:`Checkpointer` — its own
connection on its own thread — runs a PASSIVE checkpoint whenever the WAL has grown past
``wal_bytes`` since the last one, or every ``every`` seconds. PASSIVE never waits for and never
blocks the writer or a reader; once a checkpoint has copied every frame, the writer's next
transaction starts the WAL again from its beginning, and ``journal_size_limit`` truncates the
file back to ``wal_bytes`` then, so the WAL stays near that size. A writer that never pauses
(a bulk ingest) leaves no moment for that: past ``hard_bytes`` the checkpointer cuts the WAL
back itself (TRUNCATE, right after a PASSIVE pass, so the writer waits for little).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When the checkpointer copies the WAL into the database."""

    wal_bytes: int = 4 * 2**20  # a WAL file past this size is checkpointed at once
    every: float = 5.0  # seconds: a checkpoint whatever the size (a quiet ledger's last writes)
    # Past this, the WAL is cut back (TRUNCATE): under a writer that never pauses (a bulk
    # ingest) a PASSIVE checkpoint never catches up with the last frame, so the WAL is never
    # started again and grows (450 MB within a minute of a 5M-row ingest). TRUNCATE holds the
    # writer only for the frames the PASSIVE pass just before it left.
    hard_bytes: int = 64 * 2**20


DEFAULT_POLICY = CheckpointPolicy()


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """``PRAGMA wal_checkpoint(PASSIVE)``'s answer: WAL frames and frames copied."""

    busy: bool
    wal_frames: int
    copied: int


def prepare_writer(conn: sqlite3.Connection, policy: CheckpointPolicy) -> None:
    """Keep checkpoints out of the writer's commits."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA journal_size_limit = {int(policy.wal_bytes)}")


class Checkpointer:
    """A thread with its own connection that checkpoints the WAL of ``path`` (PASSIVE)."""

    def __init__(self, path: str, policy: CheckpointPolicy = DEFAULT_POLICY) -> None:
        self.path = path
        self.policy = policy
        self.wal_path = path + "-wal"
        self.checkpoints = 0  # completed PASSIVE checkpoints (tests, diagnostics)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._rounds = 0  # rounds ended
        self._started = 0  # rounds begun
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # PASSIVE never waits for anyone; TRUNCATE waits this long for the writer's turn.
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """A write committed: look at the WAL's size soon (cheap; called after each commit)."""
        self._wake.set()

    def checkpoint(self, mode: str = "PASSIVE") -> CheckpointResult:
        """One checkpoint now (PASSIVE, or TRUNCATE), from the calling thread."""
        busy, frames, copied = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        self.checkpoints += 1
        return CheckpointResult(bool(busy), int(frames), int(copied))

    def wait_round(self, timeout: float = 10.0) -> bool:
        """Wake the thread and wait until it has looked at the WAL once more (tests)."""
        with self._done:
            # A round already under way may have read the WAL's size before the caller's
            # writes: wait for the end of the next round to start.
            target = self._started + 1
            self._wake.set()
            return self._done.wait_for(lambda: self._rounds >= target, timeout)

    def close(self) -> None:
        """Stop the thread and close its connection (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self._conn.close()

    def _wal_size(self) -> int:
        try:
            return os.stat(self.wal_path).st_size
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            timed_out = not self._wake.wait(self.policy.every)
            with self._done:
                self._wake.clear()
                self._started += 1
            if self._stop.is_set():
                break
            # After a full checkpoint the writer starts the WAL again and cuts the file back to
            # journal_size_limit (= wal_bytes), so a file larger than that holds at least that
            # much WAL written since: the size test needs no bookkeeping.
            size = self._wal_size()
            if timed_out or size > min(self.policy.wal_bytes, self.policy.hard_bytes):
                try:
                    self.checkpoint()
                    if self._wal_size() > self.policy.hard_bytes:
                        self.checkpoint("TRUNCATE")
                except sqlite3.Error as exc:  # a locked or closing database: try next round
                    log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)
            with self._done:
                self._rounds += 1
                self._done.notify_all()
