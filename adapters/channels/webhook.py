"""The webhook channel (``type: webhook``): POST a rule's rendered JSON ``body`` to a URL (a CRM
task, an SMS gateway, Slack…).

Config: ``url`` (required), ``headers`` (sent with every call; secrets, never logged),
``method`` (POST or PUT), ``timeout`` (10 s, or ``{connect, read, write, pool}``),
``probe_url`` (optional: a GET answering 2xx closes an open circuit; without it a ``HEAD`` of
``url`` answered at all does: the receiver is reachable again, and the next send decides).

Answers: 2xx accepted (``id`` of a JSON answer kept as the provider id); 408, 425, 429 (with
``Retry-After``) and 5xx transient; 401 and 403 an account failure (the channel's credentials
are wrong: every send would fail, so the circuit opens and notifications stay queued); any other
status permanent for this notification (recipient class). Network failures as in
:mod:`adapters.channels.http_client`: refused or unreachable is transient, a read timeout in doubt.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson

from nextstep.adapters.channels.http_client import (
    DEFAULT_CONNECTIONS,
    SEND_ERRORS,
    make_client,
    timeout_from,
    transport_outcome,
)
from nextstep.adapters.channels.onemsg.classify import parse_retry_after
from nextstep.engine.clock import Clock
from nextstep.engine.errors import ConfigError, Problem
from nextstep.engine.metrics import PROVIDER_ANSWERS
from nextstep.engine.model import Message, Outcome, OutcomeKind
from nextstep.engine.plugins import ChannelTraits, Preview, TemplatedSend
from nextstep.engine.redact import Secrets

log = logging.getLogger(__name__)

_ANSWER_LIMIT = 2000


def classify_webhook(status: int, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
    """Map a webhook receiver's HTTP answer to an Outcome (pure)."""
    answer = body[:_ANSWER_LIMIT].decode("utf-8", "replace")
    if 200 <= status < 300:
        provider_id = None
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("id"), str | int):
            provider_id = str(data["id"])
        return Outcome(
            OutcomeKind.ACCEPTED, "accepted", provider_id, http_status=status, answer=answer
        )
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if status in (408, 425, 429) or status >= 500:
        kind = OutcomeKind.TRANSIENT
    elif status in (401, 403):
        kind = OutcomeKind.ACCOUNT
    else:
        kind = OutcomeKind.RECIPIENT
    reason = f"HTTP {status}: {answer.strip()[:200] or 'no message'}"
    pause = (retry_after or 1.0) if status == 429 else None  # the receiver's rate limit
    return Outcome(
        kind, reason, http_status=status, retry_after=retry_after, answer=answer, pause=pause
    )


CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "POST the rendered JSON body to a URL.",
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "pattern": "^https?://"},
        "headers": {"type": "object", "additionalProperties": {"$ref": "#/$defs/secret"}},
        "timeout": {"$ref": "#/$defs/timeout"},
        "method": {"enum": ["POST", "PUT"], "default": "POST"},
        "probe_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "A GET answering 2xx closes an open circuit (without it the next send "
            "is the probe).",
        },
        "max_connections": {
            "type": "integer",
            "minimum": 1,
            "description": "Connections kept open to the URL.",
        },
    },
}

SEND_SCHEMA: Mapping[str, Any] = {
    "description": "The JSON body to post, strings as Jinja2 templates.",
    "type": "object",
    "required": ["body"],
    "properties": {"body": {"description": "webhook: JSON with templated strings."}},
}


def webhook_body(message: Message) -> dict[str, Any]:
    """The JSON body ``send`` posts: the rule's rendered ``body`` (a mapping)."""
    body = message.fields.get("body")
    if not isinstance(body, Mapping):
        raise TypeError(f"a webhook body must be a mapping, not {type(body).__name__}")
    return dict(body)


class WebhookChannel:
    """POST JSON to one URL with configured headers; one long-lived client."""

    kind: ClassVar[str] = "webhook"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA
    send_schema: ClassVar[Mapping[str, Any]] = SEND_SCHEMA
    traits: ClassVar[ChannelTraits] = ChannelTraits()
    compile_send = staticmethod(TemplatedSend.compile)

    @staticmethod
    def preview(message: Message, settings: Mapping[str, Any]) -> Preview:
        """The JSON body :meth:`send` posts (the URL and headers may hold secrets: not shown)."""
        return Preview(f"webhook channel {message.channel}", webhook_body(message))

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
        problems = []
        if not config.get("url"):
            problems.append(Problem("", 0, 0, None, f"channels.{name}.url", "is required"))
        method = str(config.get("method", "POST")).upper()
        if method not in ("POST", "PUT"):
            problems.append(
                Problem(
                    "", 0, 0, None, f"channels.{name}.method", f"must be POST or PUT, not {method}"
                )
            )
        headers = config.get("headers") or {}
        if not isinstance(headers, Mapping):
            problems.append(
                Problem(
                    "",
                    0,
                    0,
                    None,
                    f"channels.{name}.headers",
                    "must be a mapping of header names to values",
                )
            )
            headers = {}
        if problems:
            raise ConfigError(problems)
        self._url = str(config["url"])
        self._method = method
        self._probe_url = config.get("probe_url")
        self._headers = {str(k): str(v) for k, v in headers.items()}
        self._headers.setdefault("Content-Type", "application/json")
        # A receiver may echo the request in its error body: every header value and query
        # value of the URLs is a credential to keep out of the ledger (issue 15.2).
        own = [*self._headers.values(), *_query_values(self._url)]
        if self._probe_url:
            own += _query_values(str(self._probe_url))
        self._secrets = Secrets(v for v in own if len(v) >= 4 and v != "application/json")
        self._client = make_client(
            timeout_from(config),
            transport=transport,
            max_connections=int(config.get("max_connections", DEFAULT_CONNECTIONS)),
        )
        self._answers = {kind: PROVIDER_ANSWERS.labels(name, kind.value) for kind in OutcomeKind}

    async def send(self, message: Message) -> Outcome:
        """Post the rendered body; the classified answer (never raises for an answer)."""
        try:
            content = orjson.dumps(webhook_body(message))
        except (TypeError, orjson.JSONEncodeError) as exc:
            outcome = Outcome(OutcomeKind.TEMPLATE, f"not sent: {exc}")
        else:
            try:
                response = await self._client.request(
                    self._method, self._url, content=content, headers=self._headers
                )
            except SEND_ERRORS as exc:
                outcome = transport_outcome(exc)
            else:
                outcome = classify_webhook(
                    response.status_code, response.headers, response.content, self._clock.now()
                )
        self._answers[outcome.kind].inc()
        outcome = self._scrub(outcome)
        if not outcome.ok:
            log.info("webhook %s: %s: %s", self.name, outcome.kind.value, outcome.reason)
        return outcome

    def _scrub(self, outcome: Outcome) -> Outcome:
        reason, answer = self._secrets.scrub(outcome.reason), self._secrets.scrub(outcome.answer)
        if (reason, answer) == (outcome.reason, outcome.answer):
            return outcome
        return dataclasses.replace(outcome, reason=reason, answer=answer)

    async def probe(self) -> bool:
        """True when ``probe_url`` answers 2xx; without one, when ``url`` answers a HEAD at
        all (a receiver still refusing connections keeps the circuit open)."""
        if not self._probe_url:
            try:
                await self._client.head(self._url, headers=self._headers)
            except SEND_ERRORS:
                return False
            return True
        try:
            response = await self._client.get(str(self._probe_url), headers=self._headers)
        except SEND_ERRORS:
            return False
        return 200 <= response.status_code < 300

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _query_values(url: str) -> list[str]:
    """The values of a URL's query parameters (``?api_key=…``)."""
    return [value for _, value in parse_qsl(urlsplit(url).query)]
