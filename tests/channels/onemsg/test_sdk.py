"""The official 1MSG Python SDK (``one-msg-sdk``, generated from 1MSG's OpenAPI description)
against the sandbox: every endpoint nextstep calls or the sandbox serves answers in a shape the
SDK's models accept, and what nextstep sends is what the SDK's request model describes.

The SDK is synchronous (urllib3), so its calls run in a thread while the sandbox serves in the
test's event loop. Endpoints the SDK has no operation for (``settings``, ``hookInfo``) go
through its generic ``ApiClient`` with the type it gives untyped answers (``Dict[str,
object]``); their ``webhookUrl`` must still fit ``GetWebhook200Response``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from one_msg_sdk import (
    ApiClient,
    Configuration,
    GetWebhook200Response,
    ListMessages200Response,
    ListTemplates200Response,
    MessageSentResponse,
    SendTemplateRequest,
    SendTemplateRequestLanguage,
)
from one_msg_sdk.api import ChannelApi, MessagingApi, TemplatesApi, WebhooksApi
from one_msg_sdk.exceptions import BadRequestException
from pydantic import ValidationError

from nextstep.adapters.channels.onemsg.payload import send_template_body
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.model import Message
from tests.support.sandbox import SandboxHandle, running_sandbox

T = TypeVar("T")
INSTANCE = "ODI371267300"
HOOK = "https://ns.example.com/webhooks/1msg/s3cret"
INBOX = "https://app.1msg.io/service/service_core/whatsapp/webhook/7"


@dataclass
class Sdk:
    """The SDK's client for one sandbox instance, and the token it sends (``?token=``)."""

    client: ApiClient
    token: str

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, self.token, *args)

    async def untyped(self, method: str, path: str, **query: str) -> dict[str, Any]:
        """An endpoint the SDK has no operation for, through its generic client."""

        def run() -> dict[str, Any]:
            request = self.client.param_serialize(
                method, path, query_params=[("token", self.token), *query.items()]
            )
            response = self.client.call_api(*request)
            response.read()
            answer = self.client.response_deserialize(response, {"200": "Dict[str, object]"})
            assert isinstance(answer.data, dict)
            return answer.data

        return await asyncio.to_thread(run)


def client_for(sandbox: SandboxHandle) -> ApiClient:
    """The SDK's client with ``{base_url}/{instanceId}`` as its host (the SDK's own usage)."""
    return ApiClient(Configuration(host=sandbox.url(INSTANCE, "").rstrip("/")))


def close(client: ApiClient) -> None:
    """The SDK's ``ApiClient`` has no close: clear its urllib3 pool (open sockets would be
    a ResourceWarning, an error here)."""
    client.rest_client.pool_manager.clear()


@pytest.fixture
async def sdk(sandbox: SandboxHandle) -> AsyncIterator[Sdk]:
    client = client_for(sandbox)
    yield Sdk(client, sandbox.token)
    close(client)


def send_request(phone: str = "34600111222", **extra: Any) -> SendTemplateRequest:
    return SendTemplateRequest(
        template="next_step_short",
        namespace=NAMESPACE,
        language=SendTemplateRequestLanguage(policy="deterministic", code="en"),
        params=[
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "go"}],
            }
        ],
        phone=phone,
        **extra,
    )


async def test_send_template(sdk: Sdk, sandbox: SandboxHandle) -> None:
    answer = await sdk.call(TemplatesApi(sdk.client).send_template, send_request())
    sent = MessageSentResponse.from_dict(answer)
    assert sent is not None and sent.sent is True
    assert sent.id and sent.id.startswith("wamid.")
    assert sent.message == "Sent to 34600111222@c.us"


async def test_a_refused_send_is_still_a_message_sent_response(sdk: Sdk) -> None:
    request = send_request().model_copy(update={"template": "no_such_template"})
    answer = await sdk.call(TemplatesApi(sdk.client).send_template, request)
    refused = MessageSentResponse.from_dict(answer)
    assert refused is not None and refused.sent is False and refused.message


def test_what_nextstep_sends_fits_the_sdk_request_model() -> None:
    message = Message(
        "whatsapp",
        "34600111222",
        {
            "template": "next_step_short",
            "namespace": NAMESPACE,
            "language": "en",
            "params": ["Ana", "go"],
            "text": "Ana, your next step: go",
            "ttl": 3600,
            "valid_until": 1_781_690_400.0,
        },
    )
    body = send_template_body(message)
    parsed = SendTemplateRequest.model_validate(body, strict=True)
    assert parsed.to_dict() == body
    assert parsed.message_send_ttl_seconds == 3600


async def test_send_template_with_a_ttl(sdk: Sdk, sandbox: SandboxHandle) -> None:
    request = send_request(messageSendTtlSeconds=43_200)
    sent = MessageSentResponse.from_dict(
        await sdk.call(TemplatesApi(sdk.client).send_template, request)
    )
    assert sent is not None and sent.sent is True
    assert sandbox.sends()[0].body["messageSendTtlSeconds"] == 43_200
    too_long = send_request(messageSendTtlSeconds=43_201)
    with pytest.raises(BadRequestException, match="messageSendTtlSeconds 43201 is out of range"):
        await sdk.call(TemplatesApi(sdk.client).send_template, too_long)


async def test_templates(sdk: Sdk, sandbox: SandboxHandle) -> None:
    listing = await sdk.call(TemplatesApi(sdk.client).list_templates)
    assert isinstance(listing, ListTemplates200Response)
    assert listing.total == len(sandbox.config.templates) == len(listing.templates or [])


async def test_status(sdk: Sdk) -> None:
    assert await sdk.call(ChannelApi(sdk.client).get_status) == {"status": "connected"}


async def test_webhook_get_and_set(sdk: Sdk) -> None:
    api = WebhooksApi(sdk.client)
    empty = await sdk.call(api.get_webhook)
    assert isinstance(empty, GetWebhook200Response) and not empty.webhook_url
    answer = await sdk.call(api.set_webhook, GetWebhook200Response(webhookUrl=HOOK))
    assert answer["set"] is True
    assert (await sdk.call(api.get_webhook)).webhook_url == HOOK
    await sdk.call(api.set_webhook, GetWebhook200Response(webhookUrl=f"{INBOX},{HOOK}"))
    assert (await sdk.call(api.get_webhook)).webhook_url == f"{INBOX},{HOOK}"


async def test_settings(sdk: Sdk) -> None:
    await sdk.call(WebhooksApi(sdk.client).set_webhook, GetWebhook200Response(webhookUrl=HOOK))
    settings = await sdk.untyped("GET", "/settings")
    assert GetWebhook200Response.from_dict({"webhookUrl": settings["webhookUrl"]}) is not None
    assert settings["webhookUrl"] == HOOK and settings["ackNotificationsOn"] is False


async def test_hook_info(sdk: Sdk, sandbox: SandboxHandle) -> None:
    sent = await sdk.call(TemplatesApi(sdk.client).send_template, send_request())
    hooks = await sdk.untyped("GET", "/hookInfo", messageId=sent["id"])
    assert isinstance(hooks["hooks"], list)


async def test_messages(sdk: Sdk) -> None:
    empty = await sdk.call(MessagingApi(sdk.client).list_messages)
    assert isinstance(empty, ListMessages200Response) and empty.messages == []
    first = await sdk.call(TemplatesApi(sdk.client).send_template, send_request())
    second = await sdk.call(TemplatesApi(sdk.client).send_template, send_request("34611000000"))
    history = await sdk.call(MessagingApi(sdk.client).list_messages)
    assert [m["id"] for m in history.messages or []] == [first["id"], second["id"]]
    item = (history.messages or [])[0]
    assert item["body"] == "Ana, your next step: go"
    assert (item["messageNumber"], item["chatId"], item["fromMe"]) == (1, "34600111222@c.us", True)


async def test_the_list_form_is_what_the_sdk_refuses() -> None:
    async with running_sandbox(webhook_form="list") as sandbox:
        client = client_for(sandbox)
        try:
            with pytest.raises(ValidationError, match="webhookUrl"):
                await asyncio.to_thread(WebhooksApi(client).get_webhook, sandbox.token)
        finally:
            close(client)
