"""Messages people send to a 1MSG number, read from its webhook bodies into
:class:`InboundMessage` values (the engine keeps them, reads stop words, makes events of them).

1MSG's normalised shape (reference §5.2): ``{"instanceId": …, "messages": [{id, body, type,
chatId, author, fromMe, self, time, senderName, quotedMsgId, caption…}]}``. ``fromMe: true`` or
``self: 1`` is an outgoing echo (our own message, or one sent from the 1MSG inbox), never a
message from a person. ``body`` is the text of a ``chat`` (and of a ``button`` answer); for
media it is a temporary URL, so the ``caption`` is the text then. ``chatId`` is
``<digits>@c.us`` for a person (``@g.us`` a group: the ``author`` is the sender). With
``rawHooks`` 1MSG posts Meta's envelope: ``entry[].changes[].value.messages[]`` with ``from``,
``timestamp``, ``text.body`` / ``button.text`` / ``<media>.caption``, ``context.id`` (the
message replied to) and the sender's name in ``value.contacts[].profile.name``.

Reading never raises: an item that is not a message from a person is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nextstep.engine.model import InboundMessage

MAX_TEXT = 4096  # WhatsApp's longest text message
TEXT_TYPES = frozenset({"chat", "text", "button", "buttons_response", "list_response"})


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _time(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _digits(address: Any) -> str:
    """The phone of ``<digits>@c.us`` (or of bare digits); empty for anything else."""
    if isinstance(address, int) and not isinstance(address, bool):
        address = str(address)
    if not isinstance(address, str):
        return ""
    user, _, domain = address.partition("@")
    user = user.lstrip("+")
    phone = user.isascii() and user.isdigit() and 6 <= len(user) <= 15
    return user if phone and domain in ("", "c.us") else ""


def _kind(item: Mapping[str, Any], default: str) -> str:
    kind = item.get("type")
    return kind[:40] if isinstance(kind, str) and kind else default


def is_echo(item: Mapping[str, Any]) -> bool:
    """An outgoing message (ours, or sent from the 1MSG inbox)."""
    return item.get("fromMe") is True or item.get("self") in (1, True, "1")


def from_normalised(item: Any, account: str) -> InboundMessage | None:
    """A message of 1MSG's ``messages[]``; None for an echo or anything unreadable."""
    if not isinstance(item, Mapping) or is_echo(item):
        return None
    provider_id = item.get("id")
    if not isinstance(provider_id, str) or not provider_id:
        return None
    chat = item.get("chatId")
    sender = _digits(item.get("author")) if str(chat).endswith("@g.us") else _digits(chat)
    sender = sender or _digits(item.get("author"))
    if not sender:
        return None
    kind = _kind(item, "chat")
    text = _text(item.get("body")) if kind in TEXT_TYPES else _text(item.get("caption"))
    quoted = item.get("quotedMsgId")
    return InboundMessage(
        provider_id=provider_id,
        sender=sender,
        text=text,
        type=kind,
        sent_at=_time(item.get("time")),
        quoted_id=quoted if isinstance(quoted, str) and quoted else None,
        account=account,
        name=_text(item.get("senderName"))[:200],
    )


def _meta_text(item: Mapping[str, Any], kind: str) -> str:
    part = item.get(kind)
    if not isinstance(part, Mapping):
        return ""
    if kind == "text":
        return _text(part.get("body"))
    if kind == "button":
        return _text(part.get("text"))
    if kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply")
        return _text(reply.get("title")) if isinstance(reply, Mapping) else ""
    return _text(part.get("caption"))


def from_meta(item: Any, value: Mapping[str, Any], account: str) -> InboundMessage | None:
    """A message of Meta's ``value.messages[]`` (``rawHooks``); None when unreadable."""
    if not isinstance(item, Mapping):
        return None
    provider_id, sender = item.get("id"), _digits(item.get("from"))
    if not isinstance(provider_id, str) or not provider_id or not sender:
        return None
    kind = _kind(item, "text")
    context = item.get("context")
    quoted = context.get("id") if isinstance(context, Mapping) else None
    name = ""
    contacts = value.get("contacts")
    if isinstance(contacts, list) and contacts and isinstance(contacts[0], Mapping):
        profile = contacts[0].get("profile")
        name = _text(profile.get("name"))[:200] if isinstance(profile, Mapping) else ""
    return InboundMessage(
        provider_id=provider_id,
        sender=sender,
        text=_meta_text(item, kind),
        type=kind,
        sent_at=_time(item.get("timestamp")),
        quoted_id=quoted if isinstance(quoted, str) and quoted else None,
        account=account,
        name=name,
    )


def account_of(doc: Mapping[str, Any]) -> str:
    """The instance a webhook body is about (``instanceId``), as text."""
    value = doc.get("instanceId")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else ""
