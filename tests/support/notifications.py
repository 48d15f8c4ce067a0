"""Building ledger records by hand for tests of the ledger and the dispatcher."""

from __future__ import annotations

from typing import Any

from nextstep.engine.ledger.base import NewNotification

T0 = 1_780_000_000.0  # FakeClock's default start


def new_notification(
    recipient: str = "34600111222",
    *,
    rule_id: str = "loan-docs",
    dedupe_key: str | None = None,
    created_at: float = T0,
    channel: str = "whatsapp",
    event: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    **extra: Any,
) -> NewNotification:
    """A queued-to-be notification with a 1MSG-like send block."""
    default_fields = {
        "template": "next_step",
        "namespace": "ns",
        "language": "en",
        "params": ["Maria", "loan", "upload documents"],
        "text": "Hello, Maria!",
    }
    return NewNotification(
        rule_id=rule_id,
        rule_version="abc123def456",
        channel=channel,
        recipient=recipient,
        fields=default_fields if fields is None else fields,
        event={"phone": recipient, "first_name": "maria"} if event is None else event,
        created_at=created_at,
        dedupe_key=dedupe_key,
        **extra,
    )
