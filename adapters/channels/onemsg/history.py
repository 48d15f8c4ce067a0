"""Finding a message we may have sent in 1MSG's message history (``GET messages``), to settle
a notification in doubt (pure; the request is the channel's ``find_sent``).

1MSG keeps the history only when history storage is on for the instance, which the API does
not say: the channel's ``history: true`` setting is the operator's word that it is, and only
then does a message missing from the history count as never sent. An item matches when it is
ours (``fromMe``), to the notification's chat, and carries its template (``metadata.template``,
when present) and its body (the template filled, when both are known).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SAFE_DELAY = 120.0  # seconds after an attempt before the history is trusted


def chat_id(recipient: str) -> str:
    """The chat of a phone number (international digits)."""
    return f"{recipient}@c.us"


def history_query(recipient: str, since: float) -> dict[str, Any]:
    """The ``GET messages`` parameters: every message to the chat since ``since``."""
    return {"chatId": chat_id(recipient), "min_time": int(since), "limit": 0}


def matching_ids(answer: Any, recipient: str, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The ids of the history items that are this message, oldest first."""
    items = answer.get("messages") if isinstance(answer, Mapping) else None
    if not isinstance(items, list):
        return ()
    found: list[tuple[float, str]] = []
    for item in items:
        if isinstance(item, Mapping) and _matches(item, recipient, fields):
            when = item.get("time")
            found.append((float(when) if isinstance(when, int | float) else 0.0, str(item["id"])))
    return tuple(message_id for _, message_id in sorted(found))


def _matches(item: Mapping[str, Any], recipient: str, fields: Mapping[str, Any]) -> bool:
    if not isinstance(item.get("id"), str) or not item["id"]:
        return False
    if item.get("fromMe") is False or str(item.get("chatId", "")).split("@")[0] != recipient:
        return False
    metadata = item.get("metadata")
    template = metadata.get("template") if isinstance(metadata, Mapping) else None
    if template is not None and template != fields.get("template"):
        return False
    body, text = item.get("body"), fields.get("text")
    if isinstance(body, str) and isinstance(text, str) and body != text:
        return False
    return template is not None or isinstance(body, str)
