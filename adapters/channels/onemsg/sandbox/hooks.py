"""Accepted messages and the statuses they produce, in Meta's format (``hookInfo``,
``rawHooks``). Each message's statuses are timed once, when it is accepted (:func:`timeline`),
so a message whose acks are never posted (no webhook, acks off, script 0007) costs no timer.

A recipient may be offline (a scenario's ``offline``, built-in suffix 0010): ``sent`` comes at
once, the statuses after it only once the phone is back. A message sent with
``messageSendTtlSeconds`` that is not delivered within it fails instead, as Meta drops it, with
Meta 131026 (see :data:`TTL_EXPIRED`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nextstep.adapters.channels.onemsg.sandbox.scenarios import AckStep

TTL_EXPIRED = AckStep(
    "failed",
    "Message undeliverable: not delivered within its time-to-live (messageSendTtlSeconds)",
    131026,
)
"""The status of a message its TTL ran out on. Meta documents no code of its own for this: it
drops the message, and 131026 (message undeliverable) is the code the reference gives for a
recipient offline longer than the default 30-day TTL; the sandbox uses it, with this text."""

Timed = tuple[float, AckStep]


def timeline(
    steps: Sequence[AckStep],
    at: float,
    ack_delay: float,
    *,
    offline: float | None = None,
    ttl: float | None = None,
) -> tuple[Timed, ...]:
    """When each scripted status happens: ``ack_delay`` apart from ``at``; the statuses after
    the leading ``sent`` ones ``offline`` seconds later (never, for ``math.inf``); and when
    the first of them would come after ``at + ttl``, :data:`TTL_EXPIRED` at that time
    instead of it and the rest."""
    timed: list[Timed] = []
    delay = 0.0
    for index, step in enumerate(steps, start=1):
        stamp = at + ack_delay * index
        if step.status != "sent" and not delay and offline:
            delay = offline
        stamp += delay
        if step.status != "sent" and ttl is not None and stamp > at + ttl:
            if not any(s.status != "sent" for _, s in timed):
                timed.append((at + ttl, TTL_EXPIRED))
            break
        if math.isinf(stamp):
            break
        timed.append((stamp, step))
    return tuple(timed)


@dataclass(frozen=True, slots=True)
class Accepted:
    """One accepted message: where it went, what it will report, when it was accepted, and
    what ``GET /messages`` shows of it (the body filled, the template, its number)."""

    instance: str
    message_id: str
    phone: str
    steps: tuple[Timed, ...]  # (when, status): see timeline()
    at: float
    post: bool
    body: str = ""
    template: str = ""
    language: str = ""
    number: int = 0

    def produced(self, now: float) -> list[dict[str, Any]]:
        """The Meta-format statuses produced by ``now``."""
        return [
            meta_hook(self.message_id, self.phone, step, stamp)
            for stamp, step in self.steps
            if stamp <= now
        ]


def meta_hook(message_id: str, phone: str, step: AckStep, stamp: float) -> dict[str, Any]:
    """One status in Meta's format, as ``hookInfo`` and ``rawHooks`` show it."""
    hook: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "status": step.status,
        "timestamp": str(int(stamp)),
        "recipient_id": phone,
    }
    if step.status == "sent":
        hook["conversation"] = {
            "id": message_id[-32:],
            "origin": {"type": "utility"},
            "expiration_timestamp": int(stamp) + 86400,
        }
        hook["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
    if step.status == "failed":
        error: dict[str, Any] = {
            "title": step.error,
            "message": step.error,
            "error_data": {"details": step.error},
        }
        if step.code is not None:
            error["code"] = step.code
        hook["errors"] = [error]
    return hook
