"""The exact JSON body of 1MSG's ``POST /{instance_id}/sendTemplate`` for a rendered message.

Shared by the 1MSG channel (what it sends) and ``nextstep render`` (what it shows), so the
preview is the request byte for byte.
"""

from __future__ import annotations

from typing import Any

from nextstep.engine.model import Message


def send_template_body(message: Message) -> dict[str, Any]:
    """``{phone, template, namespace, language: {policy: deterministic, code}, params}``.

    The body variables go in one ``body`` component, variable 1 first; a template without
    variables gets no ``params`` at all (1MSG wants only the components that have variables).
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
    return body
