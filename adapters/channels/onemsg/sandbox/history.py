"""``GET /messages``: the channel's message history, as 1MSG serves it when history storage is
on (pure). Only what the sandbox sent is in it (it receives no inbound messages).

Each item has the keys of the old swagger's message (reference §3): ``messageNumber`` (per
instance, from 1), ``id``, ``body`` (the template's body filled), ``fromMe`` (true), ``self``
(1), ``isForwarded``, ``author``, ``time`` (Unix seconds), ``chatId`` (``<phone>@c.us``),
``type`` (``template``: an inference, undocumented), ``senderName``, ``caption``,
``quotedMsgId``, ``metadata`` (the template's name and language) and ``chatName``. The official
SDK types the answer as ``{"messages": [objects]}`` (and an optional ``notice``).

Filters (query parameters): ``chatId`` (``<phone>@c.us`` or the digits), ``msgId``,
``lastMessageNumber`` (only messages numbered after it), ``min_time`` / ``max_time`` (Unix
seconds, inclusive), ``limit`` (default 100, ``0`` for all) and ``last`` (true: the newest
``limit`` rather than the oldest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nextstep.adapters.channels.onemsg.sandbox.hooks import Accepted

DEFAULT_LIMIT = 100


class HistoryQueryError(ValueError):
    """A filter that cannot be read; the message says which."""


def message_item(message: Accepted) -> dict[str, Any]:
    """One accepted message as a ``GET /messages`` item."""
    chat = f"{message.phone}@c.us"
    return {
        "messageNumber": message.number,
        "id": message.message_id,
        "body": message.body,
        "fromMe": True,
        "self": 1,
        "isForwarded": False,
        "author": f"{message.instance}@c.us",
        "time": int(message.at),
        "chatId": chat,
        "type": "template",
        "senderName": "",
        "caption": None,
        "quotedMsgId": None,
        "metadata": {"template": message.template, "language": message.language},
        "chatName": message.phone,
    }


def _number(query: Mapping[str, str], key: str) -> float | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise HistoryQueryError(f"{key}: expected a number, not {value!r}") from None


def history(
    messages: Iterable[Accepted], instance: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """The ``GET /messages`` answer for ``instance``; HistoryQueryError for a bad filter."""
    chat = query.get("chatId") or None
    phone = chat.split("@", 1)[0] if chat else None
    msg_id = query.get("msgId") or None
    after = _number(query, "lastMessageNumber")
    low, high = _number(query, "min_time"), _number(query, "max_time")
    limit = _number(query, "limit")
    count = DEFAULT_LIMIT if limit is None else int(limit)
    if count < 0:
        raise HistoryQueryError("limit: 0 (all) or more")
    newest = str(query.get("last", "")).lower() in ("1", "true", "yes")
    found = [
        m
        for m in messages
        if m.instance == instance
        and (phone is None or m.phone == phone)
        and (msg_id is None or m.message_id == msg_id)
        and (after is None or m.number > after)
        and (low is None or int(m.at) >= low)
        and (high is None or int(m.at) <= high)
    ]
    found.sort(key=lambda m: m.number)
    if count:
        found = found[-count:] if newest else found[:count]
    return {"messages": [message_item(m) for m in found]}
