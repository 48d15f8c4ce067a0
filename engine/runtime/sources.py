"""Trigger sources read by one worker at a time (``ReadsOneAtATime``: folders of
files, tables polled with a cursor) when several workers share a PostgreSQL ledger.

:class:`OneAtATime` wraps such a trigger: its ``run`` first takes the source's lock (a
session-level advisory lock, engine/ledger/postgres/sourcelock.py), trying again every
:data:`TAKEOVER_POLL` seconds while another worker holds it, then runs the trigger, which
starts from the committed progress as it always does. While it runs the lock's session is
checked every :data:`WATCH_EVERY` seconds; a lost session stops the trigger until the lock is
held again. The holder dying ends its session and its lock at once, so a waiting worker takes
the source over within :data:`TAKEOVER_POLL` seconds (issue 10: within 10 s).

Periods are real time, not the injected clock: they pace talks with other processes, whose
progress no test clock moves. On SQLite the lock is always held (one daemon per ledger).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nextstep.engine.ledger.leases import SourceLock
from nextstep.engine.plugins import Emit, ReportsStatus, Trigger

log = logging.getLogger(__name__)

TAKEOVER_POLL = 2.0  # seconds between two tries of a lock another worker holds
WATCH_EVERY = 2.0  # seconds between two checks that the lock's session still lives


class OneAtATime:
    """A trigger that runs only while this worker holds its source's lock."""

    def __init__(self, inner: Trigger, lock: SourceLock, name: str, held: set[str]) -> None:
        self.inner = inner
        self.lock = lock
        self.name = name
        self._held = held  # the daemon's set of sources held, for its row in ``workers``
        self.holding = False

    def status(self) -> dict[str, Any]:
        """The trigger's own status, and whether this worker reads the source or waits."""
        own = self.inner.status() if isinstance(self.inner, ReportsStatus) else {}
        return {**own, "source": self.name, "holder": self.holding}

    async def run(self, emit: Emit) -> None:
        """Wait for the lock, run the trigger while it is held; release it when stopped."""
        try:
            while True:
                if not await asyncio.to_thread(self.lock.acquire):
                    await asyncio.sleep(TAKEOVER_POLL)
                    continue
                if await self._run_held(emit):
                    return
        finally:
            self._set_holding(False)
            await asyncio.to_thread(self.lock.close)

    async def _run_held(self, emit: Emit) -> bool:
        """Run the trigger while the lock is held; True when it ended by itself."""
        self._set_holding(True)
        log.info("source %s: this worker reads it", self.name)
        task = asyncio.create_task(self.inner.run(emit))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WATCH_EVERY)
                if done:
                    task.result()  # a failure goes to the supervisor
                    return True
                if not await asyncio.to_thread(self.lock.alive):
                    log.warning("source %s: its lock was lost; waiting to hold it again", self.name)
                    return False
        finally:
            self._set_holding(False)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _set_holding(self, holding: bool) -> None:
        self.holding = holding
        if holding:
            self._held.add(self.name)
        else:
            self._held.discard(self.name)
