"""People writing back, in the sandbox: ``POST /_sandbox/{instance}/inbound`` posts a message
from a person to the instance's webhooks the way 1MSG does, and ``POST /{instance}/sendMessage``
answers a person with free text, which WhatsApp allows only within 24 hours of their last
message (outside it 1MSG answers 400 ``{"message": "Dialog window is closed"}``).

An inbound message is posted as 1MSG's normalised ``{"instanceId", "messages": [{id, body,
type, chatId, author, fromMe: false, self: 0, time, senderName, quotedMsgId, caption,
isForwarded}]}`` (Meta's envelope with ``rawHooks``), whatever ``ackNotificationsOn`` says:
1MSG posts messages to the webhook URLs as soon as there are some. ``repeat`` posts the same
message again (1MSG retries webhooks), ``from_me`` posts an outgoing echo instead.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from nextstep.adapters.channels.onemsg.sandbox.state import InstanceState, SandboxState
from nextstep.adapters.channels.onemsg.sandbox.validate import Reply

WINDOW = 24 * 3600.0  # seconds after a person's message during which free text may be sent
MAX_TEXT = 4096
_PHONE = re.compile(r"^\d{6,15}$")


def _phone(value: Any) -> str | None:
    text = str(value or "").strip().lstrip("+").removesuffix("@c.us")
    return text if _PHONE.match(text) else None


def message_item(body: Mapping[str, Any], now: float) -> dict[str, Any] | Reply:
    """The ``messages[]`` item of a ``/_sandbox/{instance}/inbound`` body, or the 400 why not.

    Body: ``from`` (the person's number, required), ``text``, ``type`` (``chat``), ``quoted``
    (the id of the message replied to), ``id`` (default: a new ``wamid``), ``name``."""
    phone = _phone(body.get("from"))
    if phone is None:
        return Reply(400, {"message": "from: the sender's number, 6 to 15 digits"})
    text = str(body.get("text") or "")
    kind = str(body.get("type") or "chat")
    quoted = body.get("quoted")
    media = kind not in ("chat", "button")
    return {
        "id": str(body.get("id") or "wamid.IN" + secrets.token_urlsafe(24)),
        "body": f"https://sandbox.invalid/media/{secrets.token_hex(8)}" if media else text,
        "caption": text if media else "",
        "type": kind,
        "chatId": f"{phone}@c.us",
        "author": f"{phone}@c.us",
        "senderName": str(body.get("name") or ""),
        "fromMe": body.get("from_me") is True,
        "self": 1 if body.get("from_me") is True else 0,
        "time": int(now),
        "quotedMsgId": str(quoted) if quoted else None,
        "isForwarded": False,
    }


def webhook_body(instance_id: str, item: Mapping[str, Any], *, raw: bool) -> dict[str, Any]:
    """What 1MSG posts for one message: its normalised shape, or Meta's (``rawHooks``)."""
    if not raw:
        return {"instanceId": instance_id, "messages": [dict(item)]}
    phone = str(item["chatId"]).removesuffix("@c.us")
    message: dict[str, Any] = {
        "from": phone,
        "id": item["id"],
        "timestamp": str(item["time"]),
        "type": "text" if item["type"] == "chat" else item["type"],
    }
    if item["type"] == "chat":
        message["text"] = {"body": item["body"]}
    else:
        message[str(item["type"])] = {"caption": item["caption"]}
    if item.get("quotedMsgId"):
        message["context"] = {"id": item["quotedMsgId"]}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": instance_id},
        "contacts": [{"profile": {"name": item["senderName"]}, "wa_id": phone}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": instance_id, "changes": [{"field": "messages", "value": value}]}],
    }


def send_message(
    state: SandboxState, instance_id: str, instance: InstanceState, body: Mapping[str, Any]
) -> Reply:
    """``POST sendMessage``: free text to a person who wrote within the last 24 hours."""
    phone = _phone(body.get("phone") or body.get("chatId"))
    text = body.get("body")
    if phone is None or not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
        return Reply(400, {"message": "Invalid request parameters: phone and body (1-4096)"})
    now = time.time()
    wrote = state.conversations.get((instance_id, phone))
    if wrote is None or now - wrote > WINDOW:
        state.count("texts_refused")
        return Reply(400, {"message": "Dialog window is closed"})
    message_id = "wamid." + secrets.token_urlsafe(30)
    state.texts.append(
        {
            "instance": instance_id,
            "id": message_id,
            "phone": phone,
            "body": text,
            "quotedMsgId": body.get("quotedMsgId"),
            "time": now,
        }
    )
    state.count("texts_sent")
    return Reply(
        200,
        {
            "sent": True,
            "id": message_id,
            "message": f"Sent to {phone}@c.us",
            "description": "Message has been sent to the provider",
        },
    )
