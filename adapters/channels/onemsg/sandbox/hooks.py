"""Accepted messages and the statuses they produce, in Meta's format (``hookInfo``,
``rawHooks``). Statuses are computed from the acceptance time, so a message whose acks are
never posted (no webhook, acks off, script 0007) costs no timer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nextstep.adapters.channels.onemsg.sandbox.scenarios import AckStep


@dataclass(frozen=True, slots=True)
class Accepted:
    """One accepted message: where it went, what it will report, when it was accepted, and
    what ``GET /messages`` shows of it (the body filled, the template, its number)."""

    instance: str
    message_id: str
    phone: str
    steps: tuple[AckStep, ...]
    at: float
    post: bool
    body: str = ""
    template: str = ""
    language: str = ""
    number: int = 0

    def produced(self, now: float, ack_delay: float) -> list[dict[str, Any]]:
        """The Meta-format statuses produced by ``now`` (one every ``ack_delay`` seconds)."""
        hooks = []
        for index, step in enumerate(self.steps, start=1):
            stamp = self.at + ack_delay * index
            if stamp > now:
                break
            hooks.append(meta_hook(self.message_id, self.phone, step, stamp))
        return hooks


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
