"""The ids a file queues, handed to the dispatcher while the file is still being read.

``nextstep ingest`` starts sending once the first batch is committed: an :class:`Arrivals` is
the dispatcher's :class:`~nextstep.engine.sending.feed.IdFeed` over the file's
:class:`~nextstep.engine.intake.idruns.IdRuns`, which grows as batches commit (only committed
ids are ever in it). Its window is at most ``size`` ids, so memory stays flat in file size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nextstep.engine.intake.idruns import IdRuns


class Arrivals:
    """A window over the committed ids of one file, moved on by the dispatcher."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ids: Sequence[int] = IdRuns()
        self.closed = False
        self._start = 0  # position of the window's first id
        self._window: list[int] = []
        self._changed = asyncio.Event()

    def update(self, ids: Sequence[int]) -> None:
        """The file's ids so far (after a batch committed): more may be leased."""
        self.ids = ids
        self._changed.set()

    def close(self) -> None:
        """The file is read (or reading stopped): no more ids will come."""
        self.closed = True
        self._changed.set()

    def window(self) -> Sequence[int]:
        """The ids to lease from now."""
        return self._window

    def advance(self) -> bool:
        """Move past the window; True when the new one holds ids."""
        self._start += len(self._window)
        stop = min(len(self.ids), self._start + self.size)
        ids = self.ids
        if isinstance(ids, IdRuns):
            self._window = ids.between(self._start, stop)
        else:
            self._window = list(ids[self._start : stop])
        return bool(self._window)

    async def arrived(self) -> bool:
        """Wait until ids arrive past the window (True) or the file is done (False)."""
        while True:
            self._changed.clear()
            if self.advance():
                return True
            if self.closed:
                return False
            await self._changed.wait()
