"""What the bundled triggers refuse is counted and said: one counter by trigger and reason
(``nextstep_events_refused_total``) and a WARNING line with phone numbers masked.

``trigger`` is the source key (the label ``nextstep_trigger_up`` uses); ``reason`` is a short
word from a fixed set, so the counter's series stay few whatever the input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nextstep.engine.metrics import EVENTS_REFUSED
from nextstep.engine.plugins import EventResult
from nextstep.engine.redact import mask_phones_in

SHOWN = 5  # refused items logged one by one per request or batch; the rest are counted


def refuse(
    log: logging.Logger,
    trigger: str,
    reason: str,
    message: str,
    *,
    count: int = 1,
    level: int = logging.WARNING,
) -> None:
    """Count ``count`` refusals of ``trigger`` for ``reason`` and log ``message`` once."""
    EVENTS_REFUSED.labels(trigger, reason).inc(count)
    log.log(level, "%s", mask_phones_in(message))


def render_errors(results: Sequence[EventResult]) -> list[tuple[int, str]]:
    """``(index, "rule r: reason; …")`` for each event some rule could not use."""
    return [
        (index, "; ".join(f"rule {e.rule_id}: {e.reason}" for e in errors))
        for index, result in enumerate(results)
        if (errors := result.errors)
    ]


def refuse_render_errors(
    log: logging.Logger, trigger: str, what: str, failed: Sequence[tuple[str, str]]
) -> None:
    """Count every event a rule could not render and log the first few: ``failed`` holds
    ``(where, reason)`` pairs (``event 3``, ``row id=7``); ``what`` names the request or
    batch."""
    if not failed:
        return
    EVENTS_REFUSED.labels(trigger, "render_error").inc(len(failed))
    for where, reason in failed[:SHOWN]:
        log.warning("%s", mask_phones_in(f"{what}: {where} refused: {reason}"))
    if len(failed) > SHOWN:
        log.warning("%s: %d more events refused (render errors)", what, len(failed) - SHOWN)
