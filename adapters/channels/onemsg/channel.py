"""The 1MSG WhatsApp channel (``type: 1msg``): send approved templates, list them, manage the
channel's webhooks and settings, ask ``hookInfo`` for a message's statuses.

As a plug-in it compiles its own ``send:`` blocks (:mod:`onemsg.send`), previews the exact
request (:mod:`onemsg.payload`), sends a rule's ``valid_for`` as the message's TTL
(:mod:`onemsg.ttl`; the template's category from ``GET templates``, kept a while:
:mod:`onemsg.categories`), and has the abilities ``ReceivesAcks`` (:mod:`onemsg.ackroute`),
``LooksUpStatus`` (``lookup_status``), ``RegistersAcks`` (``register_acks``, see
:mod:`onemsg.registration`), ``ListsTemplates`` (``list_templates``, :mod:`onemsg.checks`),
``ReceivesMessages`` (people's messages come on the ack route: :mod:`onemsg.inbound`) and
``SendsText`` (``send_text``: ``sendMessage``, inside WhatsApp's 24-hour window).

Every request goes to ``{base_url}/{instance_id}/{method}`` with ``Authorization: Bearer``; the
token is never logged and is cut out of any answer kept in an Outcome. ``send`` never raises
for a provider answer: it classifies it once (:mod:`onemsg.classify`), and a network
failure once (:func:`nextstep.adapters.channels.http_client.transport_outcome`).

Config: ``base_url``, ``instance_id``, ``token`` (required); ``timeout`` (10 s, or
``{connect, read, write, pool}``); ``max_connections`` (4000). ``rate`` is the dispatcher's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson

from nextstep.adapters.channels.http_client import (
    DEFAULT_CONNECTIONS,
    SEND_ERRORS,
    exchange,
    make_client,
    make_transport,
    timeout_from,
    transport_outcome,
)
from nextstep.adapters.channels.onemsg.acks import acks_from_hook_info
from nextstep.adapters.channels.onemsg.categories import TemplateCategories
from nextstep.adapters.channels.onemsg.checks import check_send
from nextstep.adapters.channels.onemsg.classify import classify
from nextstep.adapters.channels.onemsg.history import (
    DEFAULT_SAFE_DELAY,
    history_query,
    matching_ids,
)
from nextstep.adapters.channels.onemsg.payload import preview as template_preview
from nextstep.adapters.channels.onemsg.payload import template_body
from nextstep.adapters.channels.onemsg.registration import (
    UNKNOWN_ADDRESS,
    public_base,
    register_webhook,
    webhook_url,
)
from nextstep.adapters.channels.onemsg.schema import CONFIG_SCHEMA, SEND_SCHEMA
from nextstep.adapters.channels.onemsg.send import compile_send as compile_template_send
from nextstep.adapters.channels.onemsg.templates import TemplateInfo, parse_templates
from nextstep.adapters.channels.onemsg.ttl import attempt_ttl
from nextstep.adapters.channels.onemsg.whatsapp import MAX_BODY, breaks_rule, control_character
from nextstep.engine.clock import Clock
from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import ConfigError, DeliveryError, Problem
from nextstep.engine.metrics import PROVIDER_ANSWERS, SEND_LATENCY
from nextstep.engine.model import Ack, Message, Outcome, OutcomeKind
from nextstep.engine.plugins import AckRegistration, ChannelTraits, SentSearch, TemplateButton
from nextstep.engine.redact import mask_phone

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from nextstep.engine.plugins import AckRecorder

log = logging.getLogger(__name__)

MAX_WEBHOOKS = 5
MAX_TEXT = 4096  # sendMessage's body: 1 to 4096 characters
TRAITS = ChannelTraits(
    needs_phone=True,
    reports_delivery=True,
    recipient_spacing=6.0,  # Meta's pair rate: one message to a recipient every 6 s
    purpose="sends WhatsApp messages",
)


def preflight(message: Message) -> str | None:
    """Why WhatsApp would refuse this message's parameters (DESIGN §4), or None: the rules
    :mod:`onemsg.whatsapp` applies when the message is rendered, checked again."""
    params = [str(p) for p in message.fields.get("params") or ()]
    for position, text in enumerate(params, start=1):
        if not text.strip():
            return f"parameter {position} is empty"
        if breaks_rule(text):
            return f"parameter {position} has a newline, a tab or more than 4 spaces in a row"
        control = control_character(text)
        if control is not None:
            return f"parameter {position} has the control character {control}"
    body = message.fields.get("text")
    if isinstance(body, str) and len(body) > MAX_BODY:
        return f"the filled body has {len(body)} characters, more than {MAX_BODY}"
    return None


class OneMsgChannel:
    """A 1MSG channel: one long-lived HTTP client, explicit timeouts."""

    kind: ClassVar[str] = "1msg"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA
    send_schema: ClassVar[Mapping[str, Any]] = SEND_SCHEMA
    traits: ClassVar[ChannelTraits] = TRAITS
    compile_send = staticmethod(compile_template_send)
    preview = staticmethod(template_preview)
    check_send = staticmethod(check_send)

    @staticmethod
    def ack_routes(recorder: AckRecorder, secret: str, max_body: int) -> list[BaseRoute]:
        """The webhook route the daemon mounts (:func:`onemsg.ackroute.ack_routes`)."""
        # Imported here: the web stack is the daemon's, not every command's (``ingest``).
        from nextstep.adapters.channels.onemsg.ackroute import ack_routes

        return ack_routes(recorder, secret, max_body)

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        missing = [key for key in ("base_url", "instance_id", "token") if not config.get(key)]
        if missing:
            raise ConfigError(
                [
                    Problem("", 0, 0, None, f"channels.{name}.{key}", "is required")
                    for key in missing
                ]
            )
        self._token = str(config["token"])
        self._base_url = str(config["base_url"])
        self._url = f"{self._base_url.rstrip('/')}/{config['instance_id']}/"
        self._send_url = self._url + "sendTemplate"
        timeout = timeout_from(config)
        self._transport = transport or make_transport(
            int(config.get("max_connections", DEFAULT_CONNECTIONS))
        )
        self._client = make_client(timeout, transport=self._transport)
        self._history = config.get("history") is True
        self.safe_delay = parse_duration(config.get("history_delay", DEFAULT_SAFE_DELAY))
        self._timeout = timeout.as_dict()
        self._auth = {"Authorization": f"Bearer {self._token}"}
        self._send_headers = {**self._auth, "Content-Type": "application/json"}
        self._latency = SEND_LATENCY.labels(name)
        self._categories = TemplateCategories(self.list_templates, clock)
        self._untimed: set[tuple[str, str]] = set()
        self._answers = {kind: PROVIDER_ANSWERS.labels(name, kind.value) for kind in OutcomeKind}

    async def send(self, message: Message) -> Outcome:
        """Send one template; the classified answer (never raises for a provider answer)."""
        refusal = preflight(message)
        if refusal is not None:
            outcome = Outcome(OutcomeKind.TEMPLATE, f"not sent: {refusal}")
        else:
            ttl = await self._ttl(message) if "ttl" in message.fields else None
            outcome = await self._post_template(template_body(message, ttl))
        self._answers[outcome.kind].inc()
        if not outcome.ok:
            log.info(
                "1msg %s: %s to %s: %s",
                self.name,
                outcome.kind.value,
                mask_phone(message.to),
                outcome.reason,
            )
        return outcome

    @staticmethod
    def message_account(settings: Mapping[str, Any]) -> str:
        """The ``instanceId`` the messages to this channel's number come with."""
        return str(settings.get("instance_id", ""))

    async def send_text(self, to: str, text: str, *, quoted_id: str | None = None) -> Outcome:
        """``POST sendMessage`` with free text (a reply to a person): WhatsApp takes it only
        within 24 hours of their last message, else 1MSG answers 400 "Dialog window is
        closed". Classified like a template send; never raises for an answer."""
        body: dict[str, Any] = {"phone": to, "body": text[:MAX_TEXT]}
        if quoted_id:
            body["quotedMsgId"] = quoted_id
        outcome = await self._post_json(self._url + "sendMessage", body)
        self._answers[outcome.kind].inc()
        if not outcome.ok:
            log.info("1msg %s: text to %s: %s", self.name, mask_phone(to), outcome.reason)
        return outcome

    async def _ttl(self, message: Message) -> int | None:
        """``messageSendTtlSeconds`` for this attempt (:func:`onemsg.ttl.attempt_ttl`): the
        time left until ``valid_until`` within the template's category range; None (and a
        warning, once per template) when the category is unknown."""
        fields = message.fields
        ttl, valid_until = fields.get("ttl"), fields.get("valid_until")
        if not isinstance(ttl, int):
            return None
        left = valid_until - self._clock.now() if isinstance(valid_until, int | float) else None
        key = (str(fields.get("template", "")), str(fields.get("language", "")))
        try:
            category = await self._categories.category(*key)
        except Exception:  # a lookup must never cost the send itself
            log.exception("1msg %s: template category lookup failed", self.name)
            category = None
        sent = attempt_ttl(ttl, left, category)
        if sent is None and key not in self._untimed:
            self._untimed.add(key)
            log.warning(
                "1msg %s: the category of template %s (%s) is unknown: sent without a TTL",
                self.name,
                *key,
            )
        return sent

    async def buttons(self, fields: Mapping[str, Any]) -> Sequence[TemplateButton]:
        """The buttons of the message's approved template (the console's trace shows them)."""
        key = (str(fields.get("template", "")), str(fields.get("language", "")))
        template = await self._categories.template(*key)
        return template.buttons if template is not None else ()

    async def _post_template(self, body: dict[str, Any]) -> Outcome:
        return await self._post_json(self._send_url, body)

    async def _post_json(self, url: str, body: dict[str, Any]) -> Outcome:
        started = time.perf_counter()
        try:
            status, headers, content = await exchange(
                self._transport,
                "POST",
                url,
                orjson.dumps(body),
                self._send_headers,
                self._timeout,
            )
        except SEND_ERRORS as exc:
            return self._redact(transport_outcome(exc))
        finally:
            self._latency.observe(time.perf_counter() - started)
        return self._redact(classify(status, headers, content, now=self._clock.now()))

    def _redact(self, outcome: Outcome) -> Outcome:
        if self._token not in outcome.reason and self._token not in outcome.answer:
            return outcome
        return replace(
            outcome,
            reason=outcome.reason.replace(self._token, "***"),
            answer=outcome.answer.replace(self._token, "***"),
        )

    async def find_sent(self, message: Message, since: float) -> SentSearch:
        """Our messages like ``message`` in the history since ``since`` (``GET messages``);
        complete only with ``history: true``. Raises DeliveryError."""
        data = await self._get("messages", history_query(message.to, since))
        return SentSearch(matching_ids(data, message.to, message.fields), self._history)

    async def probe(self) -> bool:
        """True when ``GET status`` answers ``connected``."""
        try:
            data = await self._get("status")
        except DeliveryError:
            return False
        return isinstance(data, Mapping) and data.get("status") == "connected"

    async def list_templates(self, page: int = 100) -> list[TemplateInfo]:
        """Every template of the channel (all statuses), paging through ``GET templates``."""
        records: list[Any] = []
        while True:
            data = await self._get("templates", {"limit": page, "offset": len(records)})
            batch = data.get("templates") if isinstance(data, Mapping) else None
            if not isinstance(batch, list):
                raise self._unexpected("templates", data)
            records.extend(batch)
            total = data.get("total")
            if not batch or not isinstance(total, int) or len(records) >= total:
                return parse_templates(records)

    async def get_hook_info(self, message_id: str) -> list[dict[str, Any]]:
        """The Meta-format statuses 1MSG holds for one message (``GET hookInfo``)."""
        data = await self._get("hookInfo", {"messageId": message_id})
        hooks = data.get("hooks") if isinstance(data, Mapping) else data
        if not isinstance(hooks, list):
            raise self._unexpected("hookInfo", data)
        return [hook for hook in hooks if isinstance(hook, dict)]

    async def lookup_status(self, provider_id: str) -> list[Ack]:
        """The statuses 1MSG holds for one message, as acks (``hookInfo``)."""
        return acks_from_hook_info(await self.get_hook_info(provider_id), provider_id)

    async def register_acks(
        self, public_url: str | None, listen: str, secret: str
    ) -> AckRegistration:
        """Add this server's ack URL to the channel's webhooks (keeping the others) and switch
        ``ackNotificationsOn`` on; not done when where 1MSG reaches this server is unknown."""
        base = public_base(public_url, self._base_url, listen)
        if base is None:
            return AckRegistration(False, UNKNOWN_ADDRESS)
        registration = await register_webhook(self, webhook_url(base, secret))
        return AckRegistration(True, f"{len(registration.urls)} webhook URLs")

    async def get_webhooks(self) -> list[str]:
        """The channel's webhook URLs: ``webhookUrl`` read as one string (the official
        description's type; several URLs comma-separated) or as a list."""
        data = await self._get("webhook")
        value = data.get("webhookUrl") if isinstance(data, Mapping) else data
        return _url_list(value)

    async def set_webhooks(self, urls: Sequence[str]) -> list[str]:
        """Replace the channel's webhook URLs (1MSG keeps at most 5); the URLs it answers with.

        One URL is posted as a string, the form of 1MSG's OpenAPI description (its SDK types
        ``webhookUrl`` as one string). Several are posted as a list (the form 1MSG's MCP
        server and n8n node use); when the API refuses a list (400/422), as one comma-separated
        string, the form 1MSG is known to answer several URLs in. docs/operations.md says what
        is known and what is not.
        """
        if len(urls) > MAX_WEBHOOKS:
            raise ValueError(f"1MSG keeps at most {MAX_WEBHOOKS} webhook URLs, not {len(urls)}")
        value: str | list[str] = list(urls) if len(urls) > 1 else "".join(urls)
        try:
            data = await self._post("webhook", {"webhookUrl": value})
        except DeliveryError as exc:
            if not isinstance(value, list) or exc.outcome.http_status not in (400, 422):
                raise
            log.info("1msg %s: a webhook URL list was refused; posting one string", self.name)
            value = ",".join(urls)
            data = await self._post("webhook", {"webhookUrl": value})
        answered = data.get("webhookUrl") if isinstance(data, Mapping) else None
        return _url_list(answered) if answered is not None else list(urls)

    async def register_webhook(self, url: str) -> list[str]:
        """Add ``url`` to the channel's webhooks, keeping the others (the 1MSG inbox is one)."""
        current = await self.get_webhooks()
        if url in current:
            return current
        if len(current) >= MAX_WEBHOOKS:
            raise ValueError(f"the channel already has {MAX_WEBHOOKS} webhook URLs")
        return await self.set_webhooks([*current, url])

    async def update_settings(self, **settings: Any) -> dict[str, Any]:
        """``POST settings`` with a partial update (e.g. ``ackNotificationsOn=True``)."""
        data = await self._post("settings", settings)
        if not isinstance(data, dict):
            raise self._unexpected("settings", data)
        return data

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def _get(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self._call("GET", method, params=params)

    async def _post(self, method: str, body: Mapping[str, Any]) -> Any:
        return await self._call("POST", method, body=body)

    async def _call(
        self,
        verb: str,
        method: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One API call other than a send; raises DeliveryError carrying the classified failure."""
        headers = dict(self._auth)
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(
                verb,
                self._url + method,
                params=dict(params or {}),
                content=content,
                headers=headers,
            )
        except SEND_ERRORS as exc:
            raise DeliveryError(self._redact(transport_outcome(exc))) from None
        if response.status_code >= 300:
            outcome = classify(
                response.status_code, response.headers, response.content, now=self._clock.now()
            )
            raise DeliveryError(self._redact(outcome))
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self._unexpected(method, response.text[:200]) from None

    def _unexpected(self, method: str, data: Any) -> DeliveryError:
        reason = f"{method}: unexpected answer {str(data)[:200]}"
        return DeliveryError(self._redact(Outcome(OutcomeKind.TRANSIENT, reason)))


def _url_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(item) for item in value if item]
    return []
