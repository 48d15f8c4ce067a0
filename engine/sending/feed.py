"""Ids that arrive while a dispatcher sends them: ``nextstep ingest`` sends a file's
notifications while it is still reading the file.

A dispatcher given an :class:`IdFeed` instead of a fixed collection of ids leases from the
feed's current window (a bounded list: memory does not grow with the file). Once nothing more
is due in the window it asks the feed to move on, so the next window is leased while the last
requests of the previous one are still answered (no pause between two windows). Ids left
behind (given back, a retry due later) are not leased again by this pass: the caller sends
them afterwards, over the whole set, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class IdFeed(Protocol):
    """Where a dispatcher takes the ids it may lease from while they arrive."""

    def window(self) -> Sequence[int]:
        """The ids to lease from now (ascending; may be empty)."""
        ...

    def advance(self) -> bool:
        """Nothing more is due in the window: move past it. True when the new window holds
        ids that arrived since (lease from it at once)."""
        ...

    async def arrived(self) -> bool:
        """Wait until new ids arrive (True, the window moved onto them) or none will (False)."""
        ...
