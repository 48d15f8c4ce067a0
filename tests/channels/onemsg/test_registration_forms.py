"""Registering the ack webhook against each form of ``webhookUrl``: the official SDK's one
string, a list, and a channel that takes only strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.registration import register_webhook
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import NextstepError
from tests.support.sandbox import SandboxHandle, running_sandbox

OURS = "https://ns.example.com/webhooks/1msg/s3cret"
OLD = "https://ns.example.com/webhooks/1msg/old-secret"
INBOX = "https://app.1msg.io/service/service_core/whatsapp/webhook/7"
OTHER = "https://crm.example.com/hook"


async def preset(sandbox: SandboxHandle, value: Any) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            sandbox.url("i1", "webhook"),
            params={"token": sandbox.token},
            json={"webhookUrl": value},
        )
    assert answer.status_code == 200


def posted(sandbox: SandboxHandle) -> list[tuple[Any, int]]:
    """What the channel posted to ``webhook``, and the sandbox's HTTP status for each."""
    return [
        (r.body["webhookUrl"], r.status)
        for r in sandbox.requests
        if r.method == "POST" and r.path.endswith("/webhook") and r.body is not None
    ][1:]  # the first is preset()'s


@pytest.mark.parametrize(
    ("form", "existing", "urls", "posts"),
    [
        pytest.param("string-only", "", [OURS], [(OURS, 200)], id="alone-as-a-string"),
        pytest.param(
            "string-only",
            INBOX,
            [INBOX, OURS],
            [([INBOX, OURS], 400), (f"{INBOX},{OURS}", 200)],
            id="string-only-refuses-the-list",
        ),
        pytest.param(
            "string-only",
            f"{INBOX},{OLD}",
            [INBOX, OURS],
            [([INBOX, OURS], 400), (f"{INBOX},{OURS}", 200)],
            id="string-only-old-secret-replaced",
        ),
        pytest.param("string-only", OLD, [OURS], [(OURS, 200)], id="only-an-old-secret"),
        pytest.param("string", INBOX, [INBOX, OURS], [([INBOX, OURS], 200)], id="sdk-form"),
        pytest.param(
            "list", [INBOX, OTHER], [INBOX, OTHER, OURS], [([INBOX, OTHER, OURS], 200)], id="list"
        ),
        pytest.param("string-only", f"{INBOX},{OURS}", [INBOX, OURS], [], id="already-there"),
    ],
)
async def test_registration_per_form(
    clock: FakeClock, form: str, existing: Any, urls: list[str], posts: list[tuple[Any, int]]
) -> None:
    async with running_sandbox(webhook_form=form) as sandbox:
        await preset(sandbox, existing)
        channel = OneMsgChannel("wa", sandbox.channel_config("i1"), clock=clock)
        try:
            registration = await register_webhook(channel, OURS)
            assert await channel.get_webhooks() == urls
        finally:
            await channel.aclose()
        assert registration.urls == urls
        assert registration.changed is bool(posts)
        assert posted(sandbox) == posts
        assert sandbox.state.instance("i1").webhooks == urls
        assert sandbox.state.instance("i1").settings["ackNotificationsOn"] is True


async def test_register_acks_on_a_string_only_sandbox(clock: FakeClock) -> None:
    async with running_sandbox(webhook_form="string-only") as sandbox:
        await preset(sandbox, INBOX)
        channel = OneMsgChannel("wa", sandbox.channel_config("i1"), clock=clock)
        try:
            done = await channel.register_acks(None, "127.0.0.1:8787", "s3cret")
        finally:
            await channel.aclose()
    assert done.registered and done.detail == "2 webhook URLs"
    assert sandbox.state.instance("i1").webhooks == [
        INBOX,
        "http://127.0.0.1:8787/webhooks/1msg/s3cret",
    ]


class Forgetful:
    """A channel that answers 200 to every webhook list but keeps only its first URL."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)

    async def get_webhooks(self) -> list[str]:
        return list(self.urls)

    async def set_webhooks(self, urls: Sequence[str]) -> list[str]:
        self.urls = list(urls[:1])
        return list(urls)  # claims to have taken them all

    async def update_settings(self, **settings: Any) -> dict[str, Any]:
        return dict(settings)


async def test_a_url_the_channel_did_not_keep_is_an_error() -> None:
    with pytest.raises(NextstepError, match=r"did not keep the webhook URLs https://ns\.example"):
        await register_webhook(Forgetful([INBOX]), OURS)
