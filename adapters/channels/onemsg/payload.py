"""The exact JSON body of 1MSG's ``POST /{instance_id}/sendTemplate`` for a rendered message.

Shared by the 1MSG channel (what it sends) and its preview (what ``nextstep render`` shows), so
the preview is the request byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nextstep.engine.model import Message
from nextstep.engine.plugins import Preview


def preview(message: Message, settings: Mapping[str, Any]) -> Preview:
    """``POST {base_url}/{instance_id}/sendTemplate`` (credentials in the URL left out) and the
    body :func:`send_template_body` makes."""
    base = _without_credentials(str(settings.get("base_url", ""))).rstrip("/")
    target = f"POST {base}/{settings.get('instance_id', '')}/sendTemplate"
    return Preview(target, send_template_body(message))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def send_template_body(message: Message) -> dict[str, Any]:
    """The body of a first attempt sent at once: :func:`template_body` with the rule's TTL
    (the message's ``ttl`` field), what ``nextstep render`` shows."""
    ttl = message.fields.get("ttl")
    return template_body(message, ttl if isinstance(ttl, int) else None)


def template_body(message: Message, ttl: int | None) -> dict[str, Any]:
    """``{phone, template, namespace, language: {policy: deterministic, code}, params,
    messageSendTtlSeconds}``.

    The body variables go in one ``body`` component, variable 1 first; a template without
    variables gets no ``params`` at all (1MSG wants only the components that have variables).
    ``messageSendTtlSeconds`` only when ``ttl`` is given (:mod:`onemsg.ttl`).
    """
    fields = message.fields
    body: dict[str, Any] = {
        "phone": message.to,
        "template": fields["template"],
        "namespace": fields["namespace"],
        "language": {"policy": "deterministic", "code": fields["language"]},
    }
    params = [str(p) for p in fields.get("params") or ()]
    if params:
        body["params"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
        ]
    if ttl is not None:
        body["messageSendTtlSeconds"] = ttl
    return body
