"""A notification's fields, event and trigger as one compressed value (migration 0011).

The three JSON documents of a notification are nearly the same from one notification of a
rule version to the next: the same keys, the template's constant parts, the rendered text
that repeats the params, the event columns no template reads. They are kept as one deflate
stream of ``[fields, event, trigger]`` (JSON), primed with a *sample* of the rule version:
the first such document the ledger wrote for it, with its long numbers blanked (``packing``
table). Deflate then stores little more than what differs from the sample, exactly: reading
gives back what the JSON columns gave (``codec.loads`` of ``codec.dumps``).

A packed row holds ``''`` in ``fields``, ``event`` and ``trigger`` and the stream in
``packed``; rows written before 0011 (``packed`` NULL) are read from the JSON columns as
before. The first byte of a stream names its format, so that another can follow.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from nextstep.engine.ledger.codec import dumps, loads

FORMAT = b"\x01"  # raw deflate, level 6, a 4 KiB window, primed with the rule version's sample
# A small window and hash table: zlib's default ones (256 KiB) are allocated with mmap and
# zeroed on every compressor, ~90 µs a row instead of ~10, for the same size (a sample and a
# document are well under 4 KiB; a longer one still packs, against less of it).
_WBITS, _MEMLEVEL = 12, 4
_DIGITS = re.compile(rb"[0-9]")
# A number of five digits or more, separators allowed: a phone number, an id, an account.
_NUMBER = re.compile(rb"[0-9](?:[ ()./-]*[0-9]){4,}")
Payload = tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]


def document(fields: Any, event: Any, trigger: Any) -> bytes:
    """The JSON that is packed: ``[fields, event, trigger]``."""
    return dumps([fields, event, trigger]).encode()


def sample_of(first: bytes) -> bytes:
    """A rule version's sample from its first document, its numbers of five digits or more
    blanked (phone numbers, ids, accounts), so the sample keeps no one's number."""
    return _NUMBER.sub(lambda number: _DIGITS.sub(b"0", number[0]), first)


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


class Packer:
    """Packs the documents of one write transaction, finding or making each rule version's
    sample once (``find``: the kept sample or None; ``keep``: keep one unless another writer
    kept one first, then the kept one)."""

    def __init__(
        self,
        find: Callable[[str, str], bytes | None],
        keep: Callable[[str, str, bytes], bytes],
    ) -> None:
        self._find = find
        self._keep = keep
        self._samples: dict[tuple[str, str], bytes] = {}

    def pack(self, rule_id: str, version: str, fields: Any, event: Any, trigger: Any) -> bytes:
        """The packed value of one notification of ``rule_id`` at ``version``."""
        data = document(fields, event, trigger)
        key = (rule_id, version)
        sample = self._samples.get(key)
        if sample is None:
            sample = self._find(rule_id, version)
            if sample is None:
                sample = self._keep(rule_id, version, sample_of(data))
            self._samples[key] = sample
        return pack(data, sample)
