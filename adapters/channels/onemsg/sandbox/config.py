"""The sandbox's knobs, grouped in one frozen value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nextstep.adapters.channels.onemsg.sandbox.scenarios import Scenario, default_scenario
from nextstep.adapters.channels.onemsg.sandbox.templates import BUILTIN_TEMPLATES

DEFAULT_TOKEN = "sandbox-token"


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the local 1MSG-compatible API behaves.

    ``instances`` None accepts any instance id (each gets its own webhooks, settings, rate
    bucket). ``unknown_template`` picks how an unknown or unapproved template is refused: a
    200 ``sent:false`` answer or a passed-through Meta 132001. ``acks`` False never posts acks
    whatever the channel settings say (statuses still go to ``hookInfo``).

    ``webhook_form`` is how ``webhookUrl`` is read and answered (``GET``/``POST webhook`` and
    ``settings``): ``string`` answers one string (several URLs comma-separated), as the
    official SDK types it, and takes a string, a comma-separated string or a list; ``list``
    answers a list (as 1MSG's MCP server and n8n node describe it); ``string-only`` answers a
    string and refuses a list (400).

    ``ttl_scale`` speeds up ``messageSendTtlSeconds`` for demos and tests: at 0.01 a 30 s TTL
    runs out 0.3 s after the message was accepted.
    """

    token: str = DEFAULT_TOKEN
    instances: frozenset[str] | None = None
    latency: float = 0.0
    ack_delay: float = 0.05
    acks: bool = True
    ack_notifications_on: bool = False
    rate_limit: float | None = None
    rate_burst: float | None = None
    unknown_template: Literal["sent_false", "meta"] = "sent_false"
    meta_error_status: int = 400
    webhook_form: Literal["string", "list", "string-only"] = "string"
    ttl_scale: float = 1.0  # seconds of sandbox time per second of messageSendTtlSeconds
    history: bool = True  # history storage on: GET messages lists what was sent (else empty)
    templates: tuple[Mapping[str, Any], ...] = BUILTIN_TEMPLATES
    scenario: Scenario = field(default_factory=default_scenario)
    ack_queue: int = 20_000
    ack_batch: int = 100
    ack_retries: int = 3
    record_limit: int = 10_000
    hook_limit: int = 500_000
