"""The sandbox's HTTP API: ``/{instanceId}/{sendTemplate|sendMessage|templates|webhook|settings|
hookInfo|status|messages}`` like 1MSG, plus ``/_sandbox/…`` controls (stats, toggling a
channel's status, a person writing in: :mod:`.inbound`). Answers have the shapes the official
Python SDK's models accept (``one-msg-sdk``, tests/channels/onemsg/test_sdk.py drives the
sandbox with it).

Every API call waits ``latency`` first (asyncio.sleep, never blocking), then authenticates: the
token comes from ``?token=``, else the body's ``token``, else ``Authorization: Bearer`` (1MSG's
precedence), and a wrong one is 401 ``{"error": …}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from nextstep.adapters.channels.onemsg.sandbox.acks import AckPoster
from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.history import HistoryQueryError, history
from nextstep.adapters.channels.onemsg.sandbox.hooks import Accepted, timeline
from nextstep.adapters.channels.onemsg.sandbox.inbound import (
    message_item,
    send_message,
    webhook_body,
)
from nextstep.adapters.channels.onemsg.sandbox.scenarios import DEFAULT_ACKS, Answer
from nextstep.adapters.channels.onemsg.sandbox.settings import (
    apply_settings,
    parse_webhook_urls,
    webhook_value,
)
from nextstep.adapters.channels.onemsg.sandbox.state import InstanceState, Received, SandboxState
from nextstep.adapters.channels.onemsg.sandbox.templates import listing
from nextstep.adapters.channels.onemsg.sandbox.validate import (
    Reply,
    accepted,
    hydrate,
    meta_error,
    sent_false,
    validate_send,
)


class _Refused(Exception):
    """Ends a request early with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _respond(reply: Reply) -> Response:
    return Response(
        orjson.dumps(reply.body),
        status_code=reply.status,
        media_type="application/json",
        headers=dict(reply.headers),
    )


def _decode_form(raw: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        try:
            fields[key] = orjson.loads(value) if value[:1] in ("{", "[") else value
        except orjson.JSONDecodeError:
            fields[key] = value
    return fields


Handler = Callable[[Request, str, InstanceState, dict[str, Any]], Awaitable[Reply]]


class SandboxApi:
    """The route handlers, bound to one state and one ack poster."""

    def __init__(self, state: SandboxState, poster: AckPoster) -> None:
        self.state = state
        self.poster = poster

    def route(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler with latency, body parsing, auth and request recording."""

        async def endpoint(request: Request) -> Response:
            instance_id = request.path_params["instance"]
            try:
                if self.state.config.latency:
                    await asyncio.sleep(self.state.config.latency)
                body = await self._body(request)
                self._authenticate(request, instance_id, body)
                instance = self.state.instance(instance_id)
                reply = await handler(request, instance_id, instance, body)
            except _Refused as refused:
                reply = refused.reply
            except ClientDisconnect:
                # The client hung up mid-body (a daemon killed while posting): nothing to
                # answer, and not the sandbox's error to log with a traceback.
                reply = Reply(499, {"message": "client closed the request"})
            recorded = getattr(request.state, "body", None)
            self.state.requests.append(
                Received(instance_id, request.method, request.url.path, recorded, reply.status)
            )
            return _respond(reply)

        return endpoint

    async def _body(self, request: Request) -> dict[str, Any]:
        request.state.body = None
        if request.method != "POST":
            return {}
        raw = await request.body()
        if not raw.strip():
            return {}
        if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
            data: Any = _decode_form(raw)
        else:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise _Refused(
                    Reply(400, {"message": "Invalid request parameters: not JSON"})
                ) from exc
        if not isinstance(data, dict):
            raise _Refused(Reply(400, {"message": "Invalid request parameters: not an object"}))
        request.state.body = {k: v for k, v in data.items() if k != "token"}
        return data

    def _authenticate(self, request: Request, instance_id: str, body: Mapping[str, Any]) -> None:
        known = self.state.config.instances
        if known is not None and instance_id not in known:
            raise _Refused(Reply(404, {"error": f'Channel "{instance_id}" not found'}))
        token = request.query_params.get("token") or body.get("token")
        if not token:
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token or not secrets.compare_digest(str(token), self.state.config.token):
            message = (
                f'Wrong token for channel "{instance_id}". Please provide token as a GET parameter.'
            )
            raise _Refused(Reply(401, {"error": message}))

    async def send_template(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``POST sendTemplate``: rate limit, validation, the recipient's script, acceptance."""
        self.state.count("arrived")
        if instance.bucket is not None:
            wait = instance.bucket.take()
            if wait > 0:
                headers = {"Retry-After": str(max(1, math.ceil(wait)))}
                return Reply(429, {"error": "Too many requests"}, headers)
        checked = validate_send(
            body,
            self.state.templates,
            unknown_template=self.state.config.unknown_template,
            meta_status=self.state.config.meta_error_status,
        )
        if isinstance(checked, Reply):
            self.state.count("refused")
            return checked
        script = self.state.config.scenario.script_for(checked.phone)
        attempt = self.state.next_attempt(instance_id, checked.phone)
        answer = script.answer(attempt) if script is not None else Answer()
        if answer.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.state.closing.wait(), answer.delay)
        if not answer.accepts:
            self.state.count("refused")
            return scripted_reply(answer)
        instance.sent += 1
        now = time.time()
        steps = timeline(
            script.acks if script is not None else DEFAULT_ACKS,
            now,
            self.state.config.ack_delay,
            offline=script.offline if script is not None else None,
            ttl=None if checked.ttl is None else checked.ttl * self.state.config.ttl_scale,
        )
        message = Accepted(
            instance_id,
            "wamid." + secrets.token_urlsafe(30),
            checked.phone,
            steps,
            now,
            script.post_acks if script is not None else True,
            body=hydrate(checked.template.body, checked.texts),
            template=checked.template.name,
            language=checked.template.language,
            number=instance.sent,
        )
        self.state.count("accepted")
        self.state.accept(message)
        self.poster.schedule(message)
        if answer.hold:
            # Taken, but the answer is held back: the client's read timeout (or a lost
            # connection) after the provider accepted. math.inf waits until the sandbox stops.
            timeout = None if math.isinf(answer.hold) else answer.hold
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.state.closing.wait(), timeout)
        return accepted(message.message_id, message.phone)

    async def templates(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``GET templates`` with ``limit`` and ``offset``."""
        try:
            limit = int(request.query_params["limit"]) if "limit" in request.query_params else None
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return Reply(400, {"message": "Invalid request parameters: limit/offset"})
        return Reply(200, listing(self.state.config.templates, limit, offset))

    async def webhook(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``GET``/``POST webhook``: read or replace the URL list (at most 5), in the
        configured form (one string, as the official SDK types it, or a list)."""
        form = self.state.config.webhook_form
        if request.method == "POST":
            urls = parse_webhook_urls(body.get("webhookUrl"), strings_only=form == "string-only")
            if isinstance(urls, str):
                return Reply(400, {"message": f"Invalid request parameters: {urls}"})
            instance.webhooks = urls
            shown = webhook_value(urls, form)
            return Reply(
                200, {"set": True, "message": "Webhook URL has been set", "webhookUrl": shown}
            )
        return Reply(200, {"webhookUrl": webhook_value(instance.webhooks, form)})

    async def settings(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``GET``/``POST settings``: a partial update, answered with the settings and
        ``update`` (what changed)."""
        form = self.state.config.webhook_form
        update: dict[str, Any] = {}
        if request.method == "POST":
            changed = apply_settings(instance, body, strings_only=form == "string-only")
            if isinstance(changed, str):
                return Reply(400, {"message": f"Invalid request parameters: {changed}"})
            update = changed
            if "webhookUrl" in update:
                update["webhookUrl"] = webhook_value(update["webhookUrl"], form)
        urls = webhook_value(instance.webhooks, form)
        return Reply(200, {"webhookUrl": urls, **instance.settings, "update": update})

    async def messages(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``GET messages``: the history of what this instance sent (see :mod:`.history`)."""
        kept = self.state.messages.values() if self.state.config.history else ()
        try:
            return Reply(200, history(kept, instance_id, request.query_params))
        except HistoryQueryError as exc:
            return Reply(400, {"message": f"Invalid request parameters: {exc}"})

    async def hook_info(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``GET hookInfo?messageId=``: every status produced for the message, Meta format."""
        message_id = request.query_params.get("messageId")
        if not message_id:
            return Reply(400, {"message": "messageId is required"})
        return Reply(200, {"hooks": self.state.hooks_for(message_id, time.time())})

    async def status(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``GET status``; a scripted disconnection may end after a number of probes."""
        current = instance.status
        if current != "connected" and instance.probes_left is not None:
            if instance.probes_left <= 0:
                instance.status = current = "connected"
            instance.probes_left -= 1
        return Reply(200, {"status": current})

    async def control_status(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``POST /_sandbox/{instance}/status {"status": …}``: toggle the channel's status."""
        wanted = str(body.get("status") or "")
        if wanted not in (
            "connected",
            "connecting",
            "disconnected",
            "uninitialized",
            "unregistered",
        ):
            return Reply(400, {"message": "status: connected, connecting, disconnected…"})
        instance.status = wanted
        instance.probes_left = None
        return Reply(200, {"status": wanted})

    async def send_message(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``POST sendMessage``: free text, inside the 24-hour window only."""
        return send_message(self.state, instance_id, instance, body)

    async def inbound(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``POST /_sandbox/{instance}/inbound {"from", "text", "quoted"?, "repeat"?}``: a
        person writes; the message is posted to the instance's webhooks (``repeat`` times)."""
        now = time.time()
        item = message_item(body, now)
        if isinstance(item, Reply):
            return item
        repeat = body.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 10:
            return Reply(400, {"message": "repeat: 1 to 10"})
        if not item["fromMe"]:
            phone = str(item["chatId"]).removesuffix("@c.us")
            self.state.conversations[(instance_id, phone)] = now
        payload = webhook_body(instance_id, item, raw=instance.settings.get("rawHooks") is True)
        answers = [
            await self.poster.post_now(url, payload)
            for _ in range(repeat)
            for url in list(instance.webhooks)
        ]
        self.state.count("inbound_posted")
        return Reply(
            200, {"id": item["id"], "webhooks": len(instance.webhooks), "answers": answers}
        )

    async def stats(
        self, request: Request, instance_id: str, instance: InstanceState, body: dict[str, Any]
    ) -> Reply:
        """``GET /_sandbox/{instance}/stats``: counters, for demos and benchmarks."""
        return Reply(200, {**self.state.counts, "queued_acks": self.poster.queue.qsize()})


def scripted_reply(answer: Answer) -> Reply:
    """The HTTP answer a refusing script step gives."""
    headers: dict[str, str] = {}
    if answer.retry_after is not None:
        headers["Retry-After"] = _retry_after(answer.retry_after)
    if answer.meta is not None:
        reply = meta_error(answer.meta, None, answer.status)
    elif answer.message is not None and answer.status == 200:
        reply = sent_false(answer.message)
    elif answer.message is not None:
        reply = Reply(answer.status, {"message": answer.message})
    elif answer.error is not None:
        reply = Reply(answer.status, {"error": answer.error})
    else:
        reply = Reply(answer.status, {"message": f"HTTP {answer.status}"})
    return Reply(reply.status, reply.body, headers)


def _retry_after(value: str) -> str:
    if value.startswith("http-date:"):
        return email.utils.formatdate(time.time() + float(value[10:]), usegmt=True)
    return value


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """The sandbox as an ASGI app; ``app.state.sandbox`` is its :class:`SandboxState`."""
    state = SandboxState(config or SandboxConfig())
    poster = AckPoster(state)
    api = SandboxApi(state, poster)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await poster.start()
        state.ready.set()
        try:
            yield
        finally:
            state.closing.set()
            await poster.aclose()

    routes = [
        Route("/_sandbox/{instance}/status", api.route(api.control_status), methods=["POST"]),
        Route("/_sandbox/{instance}/stats", api.route(api.stats), methods=["GET"]),
        Route("/_sandbox/{instance}/inbound", api.route(api.inbound), methods=["POST"]),
        Route("/{instance}/sendTemplate", api.route(api.send_template), methods=["POST"]),
        Route("/{instance}/sendMessage", api.route(api.send_message), methods=["POST"]),
        Route("/{instance}/templates", api.route(api.templates), methods=["GET"]),
        Route("/{instance}/webhook", api.route(api.webhook), methods=["GET", "POST"]),
        Route("/{instance}/settings", api.route(api.settings), methods=["GET", "POST"]),
        Route("/{instance}/hookInfo", api.route(api.hook_info), methods=["GET"]),
        Route("/{instance}/status", api.route(api.status), methods=["GET"]),
        Route("/{instance}/messages", api.route(api.messages), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = state
    app.state.poster = poster
    return app
