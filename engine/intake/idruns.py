"""The ids of the notifications one file queued, kept as runs of consecutive ids.

A file's batches take their ids from one sequence, one after the other, so the queued ids of a
file are nearly always a few long runs (a duplicate or another writer's batch in between starts
a new one): ``nextstep ingest`` holds the ids it will send in memory that does not grow with the
file (an ``array`` of every id cost 8 bytes per row: 40 MB at 5 million rows).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload


class IdRuns(Sequence[int]):
    """Ascending notification ids, appended in order, stored as ``(first, last)`` runs."""

    __slots__ = ("_firsts", "_lasts", "_count")

    def __init__(self) -> None:
        self._firsts = array("q")
        self._lasts = array("q")
        self._count = 0

    def append(self, notification_id: int) -> None:
        """Add the next id; one after the last extends its run, anything else starts one."""
        lasts = self._lasts
        if lasts and notification_id == lasts[-1] + 1:
            lasts[-1] = notification_id
        elif lasts and notification_id <= lasts[-1]:
            raise ValueError(f"id {notification_id} is not after {lasts[-1]}")
        else:
            self._firsts.append(notification_id)
            lasts.append(notification_id)
        self._count += 1

    @property
    def runs(self) -> int:
        """How many runs hold the ids (what the memory grows with)."""
        return len(self._firsts)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for first, last in zip(self._firsts, self._lasts, strict=True):
            yield from range(first, last + 1)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("IdRuns index out of range")
        for first, last in zip(self._firsts, self._lasts, strict=True):
            size = last - first + 1
            if index < size:
                return first + index
            index -= size
        raise IndexError("IdRuns index out of range")  # pragma: no cover - counted above

    def between(self, start: int, stop: int) -> list[int]:
        """The ids at positions ``start`` to ``stop`` (excluded), as ``list(self)[start:stop]``
        without building the whole list."""
        found: list[int] = []
        position = 0  # of the first id of the run below
        for first, last in zip(self._firsts, self._lasts, strict=True):
            size = last - first + 1
            if position + size > start and position < stop:
                low = first + max(0, start - position)
                high = first + min(size, stop - position)
                found.extend(range(low, high))
            position += size
            if position >= stop:
                break
        return found

    def chunks(self, size: int) -> Iterator[list[int]]:
        """The ids in lists of at most ``size``, in order (only one list exists at a time)."""
        chunk: list[int] = []
        for notification_id in self:
            chunk.append(notification_id)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
