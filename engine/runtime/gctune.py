"""The collector tuned for a stretch of hot work (the daemon's run, ``nextstep ingest``, the
benchmarks), and put back as it was afterwards.

Garbage collection: the dispatcher allocates a few hundred container objects per message
(requests, answers, ledger rows), so with CPython's default gen-0 threshold of 700 the
collector runs every few messages, and each older-generation pass walks everything imported at
start-up (jsonschema, Jinja, phonenumbers' metadata…). Measured on the send benchmark, the
collector took ~80 µs of CPU per message, with pauses of tens of milliseconds. Freezing what
start-up created and collecting the young generation less often removes nearly all of it;
reference counting still frees almost everything at once, the collector only finds cycles.

Both settings are process-wide, so they are undone when the work ends: a command run in-process
(click's CliRunner in the tests, or a program embedding nextstep) must not leave the heap
frozen and the threshold raised for whatever comes next.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GEN0_THRESHOLD = 50_000
"""Allocations (net of frees) between two young-generation collections (CPython: 700)."""


@contextlib.contextmanager
def tuned_gc(gen0: int = GEN0_THRESHOLD) -> Iterator[None]:
    """For the block: collect once, move every object alive now out of the collector's reach
    (``gc.freeze``) and raise the young generation's threshold. Enter it after start-up
    (imports, configuration), before the work.

    On exit the thresholds are restored and the heap unfrozen. When it was frozen already on
    entry (an enclosing ``tuned_gc``, or the host program's own ``gc.freeze``) it stays frozen:
    what this block froze cannot be told apart, and the enclosing owner unfreezes it.
    """
    thresholds = gc.get_threshold()
    frozen_before = gc.get_freeze_count() > 0
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(gen0, 1), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen_before:
            gc.unfreeze()
