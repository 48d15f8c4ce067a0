"""Everything the sandbox remembers: per-instance settings, statuses for ``hookInfo``, the
requests it received and the acks it posted (so tests can wait on them without sleeping)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.hooks import Accepted
from nextstep.adapters.channels.onemsg.sandbox.templates import template_index
from nextstep.adapters.channels.onemsg.templates import TemplateInfo

MAX_WEBHOOKS = 5


class TokenBucket:
    """A rate limit: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self) -> float:
        """0.0 when a request may pass now, else the seconds until one may."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass
class InstanceState:
    """One channel (instance id) of the sandbox."""

    webhooks: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    status: str = "connected"
    probes_left: int | None = None  # "disconnected" probes before turning "connected"
    bucket: TokenBucket | None = None
    sent: int = 0  # messages accepted so far: the last messageNumber of GET /messages


@dataclass(frozen=True, slots=True)
class Received:
    """One API request as the sandbox saw it (token removed)."""

    instance: str
    method: str
    path: str
    body: Any
    status: int
    at: float = 0.0  # when it arrived (wall clock), for rates measured at the provider


@dataclass(frozen=True, slots=True)
class Posted:
    """One webhook call the sandbox made: where, what, and the receiver's HTTP status
    (None when it could not be reached)."""

    url: str
    payload: Mapping[str, Any]
    status: int | None


class SandboxState:
    """Mutable state behind one sandbox app (one event loop)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.templates: dict[tuple[str, str], TemplateInfo] = template_index(config.templates)
        self.instances: dict[str, InstanceState] = {}
        self.messages: OrderedDict[str, Accepted] = OrderedDict()
        self.requests: deque[Received] = deque(maxlen=config.record_limit)
        self.posted: deque[Posted] = deque(maxlen=config.record_limit)
        self.attempts: dict[tuple[str, str], int] = {}
        self.counts: dict[str, int] = {
            "accepted": 0,
            "refused": 0,
            "acks_posted": 0,
            "acks_dropped": 0,
            "posts_failed": 0,
            "arrived": 0,
            "inbound_posted": 0,
            "texts_sent": 0,
            "texts_refused": 0,
        }
        # (instance, phone) -> when the person last wrote: WhatsApp's 24-hour window for text
        self.conversations: dict[tuple[str, str], float] = {}
        self.texts: deque[dict[str, Any]] = deque(maxlen=config.record_limit)  # sendMessage
        self.ready = asyncio.Event()
        self.closing = asyncio.Event()
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    def instance(self, instance_id: str) -> InstanceState:
        """The state of one instance, created on first use."""
        found = self.instances.get(instance_id)
        if found is None:
            found = InstanceState(
                settings={
                    "ackNotificationsOn": self.config.ack_notifications_on,
                    "guaranteedHooks": False,
                    "rawHooks": False,
                },
                status=self.config.scenario.status,
                probes_left=self.config.scenario.status_recover_after,
            )
            if self.config.rate_limit:
                burst = self.config.rate_burst or max(1.0, self.config.rate_limit)
                found.bucket = TokenBucket(self.config.rate_limit, burst)
            self.instances[instance_id] = found
        return found

    def next_attempt(self, instance_id: str, phone: str) -> int:
        """How many sends to ``phone`` came before this one (0 for the first)."""
        key = (instance_id, phone)
        attempt = self.attempts.get(key, 0)
        self.attempts[key] = attempt + 1
        return attempt

    def accept(self, accepted: Accepted) -> None:
        """Remember an accepted message for ``hookInfo`` (the oldest are forgotten first)."""
        self.messages[accepted.message_id] = accepted
        if len(self.messages) > self.config.hook_limit:
            self.messages.popitem(last=False)

    def hooks_for(self, message_id: str, now: float) -> list[dict[str, Any]]:
        """Every status produced for ``message_id`` by ``now``, Meta format."""
        accepted = self.messages.get(message_id)
        return [] if accepted is None else accepted.produced(now)

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a counter and wake whoever waits for it to reach a value."""
        self.counts[name] += amount
        if self._waiters:
            for counter, wanted, future in self._waiters:
                if counter == name and wanted <= self.counts[name] and not future.done():
                    future.set_result(None)
            self._waiters = [w for w in self._waiters if not w[2].done()]

    async def wait_count(self, name: str, value: int, timeout: float = 10.0) -> None:
        """Return once counter ``name`` reached ``value`` (TimeoutError after ``timeout``)."""
        if self.counts[name] >= value:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((name, value, future))
        await asyncio.wait_for(future, timeout)

    def record_posted(self, posted: Posted, acks: int) -> None:
        """Count a webhook call (and its acks, when the receiver took them)."""
        self.posted.append(posted)
        if posted.status is None or not 200 <= posted.status < 300:
            self.count("posts_failed")
        else:
            self.count("acks_posted", acks)

    async def wait_acks(self, count: int, timeout: float = 10.0) -> None:
        """Return once ``count`` acks in total were posted successfully."""
        await self.wait_count("acks_posted", count, timeout)

    def posted_acks(self) -> list[dict[str, Any]]:
        """Every ack item successfully posted so far, in posting order."""
        return [
            item
            for posted in self.posted
            if posted.status is not None and 200 <= posted.status < 300
            for item in posted.payload.get("ack", [])
        ]
