"""Check a ``sendTemplate`` body the way 1MSG and Meta do (pure), in the reference's order:
template/language/namespace present, template known and approved, parameter count, whitespace,
hydrated length; then ``messageSendTtlSeconds`` against the template's category (Meta 100,
"Invalid parameter", when out of range: how 1MSG answers it is undocumented). Also the reply
shapes the sandbox answers with.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nextstep.adapters.channels.onemsg.sandbox.scenarios import META_ERRORS
from nextstep.adapters.channels.onemsg.templates import TemplateInfo

_BAD_WHITESPACE = re.compile(r"[\n\r\t]| {5,}")
_PHONE = re.compile(r"^\d{6,15}$")
_VARIABLE = re.compile(r"\{\{\s*(\d+)\s*\}\}")
MAX_BODY = 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


TTL_RANGES: Mapping[str, tuple[int, int]] = {
    "AUTHENTICATION": (30, 900),
    "UTILITY": (30, 43_200),
    "MARKETING": (43_200, 2_592_000),
}
"""``messageSendTtlSeconds`` per template category (the official SDK's description). The
sandbox keeps its own copy of what the provider takes, rather than the channel's
(:mod:`onemsg.ttl`), so that the tests do not check the channel against itself."""
THIRTY_DAYS = 2_592_000
LONG_TTL = frozenset({"AUTHENTICATION", "UTILITY"})  # also take -1: 30 days


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A ``sendTemplate`` body that passed validation; ``ttl`` in seconds, when it had one."""

    phone: str
    template: TemplateInfo
    texts: tuple[str, ...]
    ttl: int | None = None


def meta_error(code: int, details: str | None = None, status: int = 400) -> Reply:
    """A passed-through Meta Graph error (``error.code`` + ``error_data.details``)."""
    title, default_details = META_ERRORS.get(code, ("Error", ""))
    message = f"(#{code}) {title}"
    return Reply(
        status,
        {
            "sent": False,
            "message": message,
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {
                    "messaging_product": "whatsapp",
                    "details": details if details is not None else default_details,
                },
                "fbtrace_id": "Asandbox" + secrets.token_hex(8),
            },
        },
    )


def sent_false(message: str) -> Reply:
    """1MSG's refusal with HTTP 200."""
    return Reply(200, {"sent": False, "message": message})


def accepted(message_id: str, phone: str) -> Reply:
    """1MSG's acceptance (not delivery)."""
    return Reply(
        200,
        {
            "sent": True,
            "id": message_id,
            "message": f"Sent to {phone}@c.us",
            "description": "Message has been sent to the provider",
        },
    )


def validate_send(
    payload: Mapping[str, Any],
    templates: Mapping[tuple[str, str], TemplateInfo],
    *,
    unknown_template: str = "sent_false",
    meta_status: int = 400,
) -> SendRequest | Reply:
    """The checked request, or the reply refusing it."""
    phone = _phone(payload)
    if phone is None:
        return Reply(400, {"message": "Invalid request parameters: a valid phone or chatId"})
    name, namespace, language = _template_keys(payload)
    if not name or not namespace or not language:
        return Reply(400, {"message": "template is not defined"})
    template = templates.get((name, language))
    if template is None or not template.approved or template.namespace != namespace:
        if unknown_template == "meta":
            details = f"template name ({name}) does not exist in {language}"
            return meta_error(132001, details, meta_status)
        return sent_false(f"Template {name} ({language}) not found or not approved")
    texts = _body_texts(payload.get("params"))
    if texts is None:
        return Reply(400, {"message": "Invalid request parameters: params"})
    if len(texts) != template.variables:
        details = (
            f"body: number of localizable_params ({len(texts)}) does not match the expected "
            f"number of params ({template.variables})"
        )
        return meta_error(132000, details, meta_status)
    for position, text in enumerate(texts, start=1):
        if not text.strip():
            return meta_error(131008, f"body: parameter {position} is empty", meta_status)
        if _BAD_WHITESPACE.search(text):
            return meta_error(132018, None, meta_status)
    if len(hydrate(template.body, texts)) > MAX_BODY:
        return meta_error(132005, None, meta_status)
    ttl = _ttl(payload.get("messageSendTtlSeconds"), template.category)
    if isinstance(ttl, Reply):
        return ttl
    return SendRequest(phone, template, texts, ttl)


def _ttl(value: Any, category: str) -> int | None | Reply:
    """``messageSendTtlSeconds`` in seconds (-1: 30 days), or the refusal of a value the SDK's
    type (an integer) or the category's range does not allow. A template of another category
    takes any TTL from 30 s to 30 days."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        message = "Invalid request parameters: messageSendTtlSeconds must be an integer"
        return Reply(400, {"message": message})
    low, high = TTL_RANGES.get(category, (30, THIRTY_DAYS))
    if value == -1 and category in LONG_TTL:
        return THIRTY_DAYS
    if low <= value <= high:
        return value
    extra = ", or -1" if category in LONG_TTL else ""
    details = (
        f"messageSendTtlSeconds {value} is out of range for {category or 'this'} templates "
        f"({low}-{high}{extra})"
    )
    return meta_error(100, details)


def hydrate(body: str, texts: tuple[str, ...]) -> str:
    """The body with ``{{n}}`` replaced by the n-th text."""
    return _VARIABLE.sub(lambda m: _nth(texts, int(m.group(1))), body)


def _nth(texts: tuple[str, ...], n: int) -> str:
    return texts[n - 1] if 0 < n <= len(texts) else ""


def _phone(payload: Mapping[str, Any]) -> str | None:
    value = payload.get("phone")
    if value is None and isinstance(payload.get("chatId"), str):
        value = payload["chatId"].split("@", 1)[0]
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    phone = str(value).strip().lstrip("+")
    return phone if _PHONE.match(phone) else None


def _template_keys(payload: Mapping[str, Any]) -> tuple[str, str, str]:
    language = payload.get("language")
    code = language.get("code") if isinstance(language, Mapping) else language
    return (
        str(payload.get("template") or ""),
        str(payload.get("namespace") or ""),
        str(code or ""),
    )


def _body_texts(params: Any) -> tuple[str, ...] | None:
    """Texts of every body parameter, in order; None when ``params`` is malformed."""
    if params is None:
        return ()
    if not isinstance(params, list):
        return None
    texts: list[str] = []
    for component in params:
        if not isinstance(component, Mapping):
            return None
        if str(component.get("type", "")).lower() != "body":
            continue
        parameters = component.get("parameters")
        if not isinstance(parameters, list):
            return None
        for parameter in parameters:
            if not isinstance(parameter, Mapping):
                return None
            texts.append(str(parameter.get("text", "")))
    return tuple(texts)
