"""How long inbound messages are kept (``inbound.retention`` in nextstep.yaml, 30 days by
default), and the daemon's loop that forgets older ones. Dedupe of provider retries holds
within it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from nextstep.engine.clock import Clock
from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import NextstepError
from nextstep.engine.ledger.runner import LedgerRunner

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 30 * 86_400.0
PRUNE_EVERY = 3_600.0


def retention_of(settings: Mapping[str, Any]) -> float:
    """``inbound.retention`` of the whole nextstep.yaml, in seconds (the schema checked it)."""
    block = settings.get("inbound")
    value = block.get("retention") if isinstance(block, Mapping) else None
    if value is None:
        return DEFAULT_RETENTION
    try:
        return parse_duration(value)
    except (ValueError, TypeError):
        return DEFAULT_RETENTION


async def prune_inbound(
    runner: LedgerRunner, clock: Clock, retention: float, every: float = PRUNE_EVERY
) -> None:
    """Forget inbound messages older than ``retention``, every ``every`` seconds, until
    cancelled."""
    while True:
        try:
            gone = await runner.call(runner.store.prune_inbound, clock.now() - retention)
        except NextstepError as exc:
            log.warning("old inbound messages not pruned: %s", exc)
        else:
            if gone:
                log.info("%d inbound messages older than the retention forgotten", gone)
        await clock.sleep(every)
