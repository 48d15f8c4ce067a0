"""Registering the ack webhook keeps the channel's other URLs (at most 5) and turns acks on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from nextstep.adapters.channels.onemsg.registration import (
    merged_urls,
    register_webhook,
    webhook_url,
)
from nextstep.engine.errors import NextstepError

OURS = "https://ns.example.com/webhooks/1msg/s3cret"
INBOX = "https://app.1msg.io/service/service_core/whatsapp/webhook/7"


class FakeAdmin:
    """A channel's webhook list and settings, as 1MSG keeps them."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self.settings: dict[str, Any] = {}
        self.posts = 0

    async def get_webhooks(self) -> list[str]:
        return list(self.urls)

    async def set_webhooks(self, urls: Sequence[str]) -> list[str]:
        self.posts += 1
        self.urls = list(urls)
        return list(self.urls)

    async def update_settings(self, **settings: Any) -> dict[str, Any]:
        self.settings.update(settings)
        return dict(self.settings)


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param([], [OURS], id="empty"),
        pytest.param([INBOX], [INBOX, OURS], id="keeps-inbox"),
        pytest.param([INBOX, OURS], None, id="already-there"),
        pytest.param(
            [INBOX, "https://ns.example.com/webhooks/1msg/old"], [INBOX, OURS], id="old-secret"
        ),
        pytest.param(
            [f"https://x{i}.example" for i in range(4)],
            [*(f"https://x{i}.example" for i in range(4)), OURS],
            id="fifth",
        ),
    ],
)
def test_merged_urls(existing: list[str], expected: list[str] | None) -> None:
    assert merged_urls(existing, OURS) == expected


def test_full_list_is_an_error_naming_what_to_do() -> None:
    with pytest.raises(NextstepError, match="remove one"):
        merged_urls([f"https://x{i}.example" for i in range(5)], OURS)


def test_webhook_url() -> None:
    assert webhook_url("https://ns.example.com/", "s3cret") == OURS
    with pytest.raises(NextstepError):
        webhook_url("https://ns.example.com", "")


async def test_register_keeps_others_and_turns_acks_on() -> None:
    admin = FakeAdmin([INBOX])
    first = await register_webhook(admin, OURS)
    assert (first.urls, first.changed) == ([INBOX, OURS], True)
    assert admin.settings == {"ackNotificationsOn": True}
    again = await register_webhook(admin, OURS)
    assert (again.changed, admin.posts) == (False, 1)
