"""The 202 answer: how many events, the notifications queued, and what was not queued and why
(``errors``: events refused or that a rule could not render; ``duplicates``: the skipped
notification of each event a dedupe key had already seen; ``explain``: every rule's result)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nextstep.engine.plugins import EventResult


def answer(
    total: int,
    results: Sequence[tuple[int, EventResult]],
    refused: Sequence[tuple[int, str]],
    explain: bool,
) -> dict[str, Any]:
    """``results`` pairs each emitted event's index in the body with its result; ``refused``
    the index of each event that was not emitted with why."""
    doc: dict[str, Any] = {
        "events": total,
        "notifications": [
            r.notification_id
            for _, result in results
            for r in result.results
            if r.status == "queued" and r.notification_id is not None
        ],
    }
    errors = [{"event": i, "rule": None, "reason": reason} for i, reason in refused]
    errors += [
        {"event": i, "rule": r.rule_id, "reason": r.reason}
        for i, result in results
        for r in result.errors
    ]
    if errors:
        doc["errors"] = sorted(errors, key=lambda e: e["event"])
    duplicates = [
        {"event": i, "rule": r.rule_id, "notification": r.notification_id, "reason": r.reason}
        for i, result in results
        for r in result.results
        if r.status == "duplicate"
    ]
    if duplicates:
        doc["duplicates"] = duplicates
    if explain:
        doc["explain"] = [
            {
                "event": i,
                "rule": r.rule_id,
                "status": r.status,
                "reason": r.reason,
                "notification_id": r.notification_id,
            }
            for i, result in results
            for r in result.results
        ]
    return doc
