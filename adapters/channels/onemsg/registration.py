"""Register the daemon's ack webhook with a 1MSG channel without losing anyone else's.

1MSG keeps at most 5 webhook URLs per channel and ``POST webhook`` replaces the whole list, so
the current list is read first and only our URL is added (the 1MSG cabinet inbox is usually
one of the others and must stay). The list is posted in the form the channel takes (one URL as
a string, several as a list or a comma-separated string: ``OneMsgChannel.set_webhooks``) and
read back in either form. A URL of ours with an older secret (same address up to the
secret) is replaced rather than kept beside the new one. Acks are only posted when the
channel's ``ackNotificationsOn`` setting is on, so it is switched on as well.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from nextstep.engine.errors import NextstepError

log = logging.getLogger(__name__)

MAX_WEBHOOKS = 5
WEBHOOK_PATH = "/webhooks/1msg/"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
UNKNOWN_ADDRESS = (
    "set server.public_url (or register /webhooks/1msg/<secret> with 1MSG) to receive acks; "
    "until then statuses come from hookInfo"
)


def public_base(public_url: str | None, base_url: str, listen: str) -> str | None:
    """Where 1MSG can reach this server: ``server.public_url`` when set, else this address
    (``listen``) when the channel's API is on loopback too (the sandbox), else unknown."""
    if public_url:
        return public_url
    return f"http://{listen}" if (urlsplit(base_url).hostname or "") in LOOPBACK else None


class WebhookAdmin(Protocol):
    """What registration needs of a 1MSG channel (``onemsg.OneMsgChannel`` has it)."""

    async def get_webhooks(self) -> list[str]: ...

    async def set_webhooks(self, urls: Sequence[str]) -> list[str]: ...

    async def update_settings(self, **settings: Any) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Registration:
    """What registering did: the channel's URL list afterwards and whether it was changed."""

    urls: list[str]
    changed: bool


def webhook_url(public_base: str, secret: str) -> str:
    """The ack URL 1MSG must call: ``{public_base}/webhooks/1msg/{secret}``."""
    if not secret:
        raise NextstepError("server.webhook_secret is empty: set it to register the webhook")
    return f"{public_base.rstrip('/')}{WEBHOOK_PATH}{secret}"


def merged_urls(existing: Sequence[str], ours: str) -> list[str] | None:
    """The list to post so that ``ours`` is in it, or None when nothing has to change.

    Other URLs are kept in their order; a stale URL of ours (same prefix, another secret) gives
    its place to the new one. Raises :class:`NextstepError` when the list is already full.
    """
    if ours in existing:
        return None
    prefix = ours[: ours.index(WEBHOOK_PATH) + len(WEBHOOK_PATH)]
    kept = [url for url in existing if not url.startswith(prefix)]
    if len(kept) >= MAX_WEBHOOKS:
        raise NextstepError(
            f"the 1MSG channel already has {MAX_WEBHOOKS} webhook URLs ({', '.join(kept)}); "
            "remove one in the 1MSG cabinet, then start nextstep again"
        )
    return [*kept, ours]


async def register_webhook(channel: WebhookAdmin, url: str) -> Registration:
    """Make sure ``url`` receives the channel's acks, keeping the channel's other URLs.

    After a change the list is read back (an answer may claim more than was kept); a URL
    missing from it is an error naming what to do (no acks would arrive, or the 1MSG inbox
    would stop getting messages).
    """
    current = await channel.get_webhooks()
    wanted = merged_urls(current, url)
    if wanted is not None:
        await channel.set_webhooks(wanted)
        current = await channel.get_webhooks()
        missing = [u for u in wanted if u not in current]
        if missing:
            raise NextstepError(
                f"1MSG did not keep the webhook URLs {', '.join(missing)} (it lists "
                f"{', '.join(current) or 'none'}); set them in the 1MSG cabinet"
            )
        log.info("registered the ack webhook with 1MSG (%d URLs now)", len(current))
    await channel.update_settings(ackNotificationsOn=True)
    return Registration(list(current), wanted is not None)
