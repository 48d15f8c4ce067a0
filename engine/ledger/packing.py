"""A notification's fields, event and trigger as one compressed value (migration 0011).

The three JSON documents of a notification are nearly the same from one notification of a
rule version to the next: the same keys, the template's constant parts, the rendered text
that repeats the params, the event columns no template reads. They are kept as one deflate
stream of ``[fields, event, trigger]`` (JSON), primed with a *sample* of the rule version
(``packing`` table) made from the first notifications the ledger wrote for it, with what is
one person's own taken out (:func:`sample_of`): the sample outlives retention, so it must hold
no one's data. Deflate then stores little more than what differs from the sample, exactly:
reading gives back what the JSON columns gave (``codec.loads`` of ``codec.dumps``).

A packed row holds ``''`` in ``fields``, ``event`` and ``trigger`` and the stream in
``packed``; rows written before 0011 (``packed`` NULL) are read from the JSON columns as
before. The first byte of a stream names its format, so that another can follow.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from nextstep.engine.ledger.codec import dumps, loads

FORMAT = b"\x01"  # raw deflate, level 6, a 4 KiB window, primed with the rule version's sample
# A small window and hash table: zlib's default ones (256 KiB) are allocated with mmap and
# zeroed on every compressor, ~90 µs a row instead of ~10, for the same size (a sample and a
# document are well under 4 KiB; a longer one still packs, against less of it).
_WBITS, _MEMLEVEL = 12, 4
_DIGITS = re.compile(rb"[0-9]")
# A number of five digits or more, separators allowed: a phone number, an id, an account.
_NUMBER = re.compile(rb"[0-9](?:[ ()./-]*[0-9]){4,}")
_ABSENT = object()
_SHORTEST = 3  # shorter event values are not taken out of the fields ("en" in "language")
Payload = tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]


def document(fields: Any, event: Any, trigger: Any) -> bytes:
    """The JSON that is packed: ``[fields, event, trigger]``."""
    return dumps([fields, event, trigger]).encode()


def sample_of(firsts: Sequence[Payload]) -> bytes:
    """A rule version's sample from its first one or two notifications' documents.

    An event value the two share (a stage, a due date, a column every row repeats) is kept; of
    two different texts only the start and end they share ("@example.com"); any other value is
    blanked, in the event and wherever the rendered fields repeat it (in any case: ``| title``
    of a name). A trigger value they share (kind, source, file) is kept, the
    rest blanked. From one document alone every event value is blanked. Last, numbers of five
    digits or more are blanked (phone numbers, ids, accounts) even when shared."""
    fields, event, trigger = firsts[0]
    other = firsts[1] if len(firsts) > 1 else ({}, {}, {})
    private: set[str] = set()
    kept_event = {}
    for key, value in event.items():
        theirs = other[1].get(key, _ABSENT)
        if theirs == value:
            kept_event[key] = value
        elif isinstance(value, str) and isinstance(theirs, str):
            kept_event[key] = _common_ends(value, theirs)  # "@example.com", "+34 6"
            private.add(value)
        else:
            kept_event[key] = _blank(value, private)
    kept_trigger = {
        key: value if key in other[2] and other[2][key] == value else _blank(value, set())
        for key, value in trigger.items()
    }
    words = sorted((w for w in private if len(w) >= _SHORTEST), key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, words)), re.IGNORECASE) if words else None
    data = document(_strip(fields, pattern), kept_event, kept_trigger)
    return _NUMBER.sub(lambda number: _DIGITS.sub(b"0", number[0]), data)


def _common_ends(mine: str, theirs: str) -> str:
    """The start and the end two different texts share (each kept from three characters)."""
    start = len(os.path.commonprefix([mine, theirs]))
    end = len(os.path.commonprefix([mine[start:][::-1], theirs[start:][::-1]]))
    head = mine[:start] if start >= _SHORTEST else ""
    tail = mine[len(mine) - end :] if end >= _SHORTEST else ""
    return head + tail


def _blank(value: Any, private: set[str]) -> Any:
    """``value`` with its text and numbers emptied (shape kept); the texts go to ``private``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str | int | float):
        private.add(str(value))
        return "" if isinstance(value, str) else 0
    if isinstance(value, Mapping):
        return {key: _blank(item, private) for key, item in value.items()}
    if isinstance(value, list | tuple):
        for item in value:
            _blank(item, private)
        return []
    private.add(str(value))
    return ""


def _strip(value: Any, pattern: re.Pattern[str] | None) -> Any:
    """``value`` with every match of ``pattern`` taken out of its texts."""
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub("", value)
    if isinstance(value, Mapping):
        return {key: _strip(item, pattern) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strip(item, pattern) for item in value]
    return value


def pack(data: bytes, sample: bytes) -> bytes:
    """``data`` (a :func:`document`) compressed against ``sample``."""
    squeeze = zlib.compressobj(
        6, zlib.DEFLATED, -_WBITS, _MEMLEVEL, zlib.Z_DEFAULT_STRATEGY, sample
    )
    return FORMAT + squeeze.compress(data) + squeeze.flush()


def unpack(packed: bytes, sample: bytes) -> Payload:
    """The ``(fields, event, trigger)`` a :func:`pack` stream holds."""
    if packed[:1] != FORMAT:
        raise ValueError(f"unknown packed format {packed[:1]!r}")
    spread = zlib.decompressobj(-_WBITS, sample)
    fields, event, trigger = loads(spread.decompress(packed[1:]) + spread.flush())
    return fields, event, trigger


class Packable(Protocol):
    """What is packed of a notification to write (``NewNotification``)."""

    @property
    def rule_id(self) -> str: ...
    @property
    def rule_version(self) -> str: ...
    @property
    def fields(self) -> Mapping[str, Any]: ...
    @property
    def event(self) -> Mapping[str, Any]: ...
    @property
    def trigger(self) -> Mapping[str, Any]: ...


class Packer:
    """Packs the documents of one write transaction, finding or making each rule version's
    sample once (``find``: the kept sample or None; ``keep``: keep one unless another writer
    kept one first, then the kept one). ``items`` are the transaction's notifications: a
    version with no sample yet gets one from its first two (:func:`sample_of`)."""

    def __init__(
        self,
        find: Callable[[str, str], bytes | None],
        keep: Callable[[str, str, bytes], bytes],
        items: Iterable[Packable] = (),
    ) -> None:
        self._find = find
        self._keep = keep
        self._samples: dict[tuple[str, str], bytes] = {}
        self._firsts: dict[tuple[str, str], list[Payload]] = {}
        for item in items:
            firsts = self._firsts.setdefault((item.rule_id, item.rule_version), [])
            if len(firsts) < 2:
                firsts.append((item.fields, item.event, item.trigger))

    def pack(self, rule_id: str, version: str, fields: Any, event: Any, trigger: Any) -> bytes:
        """The packed value of one notification of ``rule_id`` at ``version``."""
        data = document(fields, event, trigger)
        key = (rule_id, version)
        sample = self._samples.get(key)
        if sample is None:
            sample = self._find(rule_id, version)
            if sample is None:
                firsts = self._firsts.get(key) or [(fields, event, trigger)]
                sample = self._keep(rule_id, version, sample_of(firsts))
            self._samples[key] = sample
        return pack(data, sample)
