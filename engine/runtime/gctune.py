"""Process-wide runtime settings for a long-running sender (the daemon, the send benchmark).

Garbage collection: the dispatcher allocates a few hundred container objects per message
(requests, answers, ledger rows), so with CPython's default gen-0 threshold of 700 the
collector runs every few messages, and each older-generation pass walks everything imported at
start-up (jsonschema, Jinja, phonenumbers' metadata…). Measured on the send benchmark, the
collector took ~80 µs of CPU per message, with pauses of tens of milliseconds. Freezing what
start-up created and collecting the young generation less often removes nearly all of it;
reference counting still frees almost everything at once, the collector only finds cycles.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000
"""Allocations (net of frees) between two young-generation collections (CPython: 700)."""


def tune_gc(gen0: int = GEN0_THRESHOLD) -> None:
    """Collect once, move every object alive now out of the collector's reach (``gc.freeze``),
    and raise the young generation's threshold. Call it once, after start-up (imports,
    configuration) and before the work starts; calling it again only freezes more."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 1), gen1, gen2)
