"""Channel settings as 1MSG keeps them: a webhook URL list that a POST replaces (at most 5;
a string, a comma-separated string or a list, or only a string in the ``string-only`` form),
answered as one string or a list (:func:`webhook_value`), ``ackNotificationsOn`` and friends
(pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nextstep.adapters.channels.onemsg.sandbox.state import MAX_WEBHOOKS, InstanceState

BOOLEAN_SETTINGS = frozenset(
    {
        "ackNotificationsOn",
        "guaranteedHooks",
        "rawHooks",
        "template_analytics_enabled",
        "cta_url_link_tracking_opted_out",
    }
)


def parse_webhook_urls(value: Any, *, strings_only: bool = False) -> list[str] | str:
    """The URL list from a ``webhookUrl`` value, or an error text. ``strings_only`` refuses a
    list (the official description types ``webhookUrl`` as one string)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif strings_only:
        return "webhookUrl: Input should be a valid string"
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        return "webhookUrl: a URL or a list of URLs"
    urls = [item for item in items if item]
    if len(urls) > MAX_WEBHOOKS:
        return f"webhookUrl: at most {MAX_WEBHOOKS} URLs"
    for url in urls:
        if not url.startswith(("http://", "https://")):
            return f"webhookUrl: {url!r} is not an http(s) URL"
    return urls


def webhook_value(urls: list[str], form: str) -> str | list[str]:
    """``webhookUrl`` as answered: a list for the ``list`` form, else one string (several URLs
    joined by commas, the legacy form; empty when there is none)."""
    return list(urls) if form == "list" else ",".join(urls)


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "1", "on", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "off", "no"):
        return False
    return None


def apply_settings(
    instance: InstanceState, body: Mapping[str, Any], *, strings_only: bool = False
) -> dict[str, Any] | str:
    """Apply a partial settings update; the changed keys, or an error text (nothing applied)."""
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "token":
            continue
        if key == "webhookUrl":
            urls = parse_webhook_urls(value, strings_only=strings_only)
            if isinstance(urls, str):
                return urls
            changes[key] = urls
        elif key in BOOLEAN_SETTINGS:
            flag = _boolean(value)
            if flag is None:
                return f"{key}: expected true or false"
            changes[key] = flag
        else:
            changes[key] = value
    for key, value in changes.items():
        if key == "webhookUrl":
            instance.webhooks = value
        else:
            instance.settings[key] = value
    return changes
