"""Post the statuses of accepted messages to the registered webhooks.

When the instance has ``ackNotificationsOn`` and webhook URLs, each status is produced at its
time (``ack_delay`` apart, later for an offline recipient: :func:`.hooks.timeline`) by a loop
timer and put on a bounded queue (``hookInfo`` computes the
same statuses from the acceptance time, posted or not). One worker drains the queue in batches,
so each message's acks keep their scripted order, and posts ``{"instanceId": …, "ack": [{id,
chatId, phone, status, error?}]}`` (or Meta's envelope when ``rawHooks`` is on) through one
shared aiohttp session: sendTemplate answers never wait for a webhook. A full queue drops the
ack (counted) as a real provider would; ``hookInfo`` still has it. A receiver that answers
non-2xx or cannot be reached is tried again a few times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from nextstep.adapters.channels.onemsg.sandbox.hooks import Accepted, meta_hook
from nextstep.adapters.channels.onemsg.sandbox.state import Posted, SandboxState


@dataclass(frozen=True, slots=True)
class _Pending:
    """One ack waiting to be posted."""

    instance: str
    item: dict[str, Any]
    hook: dict[str, Any]


class AckPoster:
    """Schedules statuses and posts them as webhook acks; one per sandbox app."""

    def __init__(self, state: SandboxState, workers: int = 1) -> None:
        self.state = state
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=state.config.ack_queue)
        self._workers_wanted = workers
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._retries: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the shared HTTP session and start the workers (inside the serving loop)."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=5.0),
            connector=aiohttp.TCPConnector(limit=64),
        )
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._workers_wanted)]

    async def aclose(self) -> None:
        """Stop timers, workers and retries; close the session."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [*self._workers, *self._retries]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def schedule(self, accepted: Accepted) -> None:
        """Post the statuses of one accepted message at their times, while the channel wants
        acks (one live timer per message)."""
        if accepted.post and accepted.steps and self._wanted(accepted.instance):
            self._arm(accepted, 0)

    def _wanted(self, instance: str) -> bool:
        channel = self.state.instance(instance)
        return bool(
            self.state.config.acks
            and channel.settings.get("ackNotificationsOn") is True
            and channel.webhooks
        )

    def _arm(self, accepted: Accepted, index: int) -> None:
        loop = asyncio.get_running_loop()
        when = accepted.steps[index][0] - time.time()

        def fire() -> None:
            self._timers.discard(timer)
            self._produce(accepted, index)

        timer = loop.call_later(max(0.0, when), fire)
        self._timers.add(timer)

    def _produce(self, accepted: Accepted, index: int) -> None:
        if index + 1 < len(accepted.steps):
            self._arm(accepted, index + 1)
        if not self._wanted(accepted.instance):
            return
        stamp, step = accepted.steps[index]
        item: dict[str, Any] = {
            "id": accepted.message_id,
            "chatId": f"{accepted.phone}@c.us",
            "phone": accepted.phone,
            "status": step.status,
        }
        if step.status == "failed":
            item["error"] = step.error
        if not step.post:
            return  # a missing ack: hookInfo has it, no webhook call ever will
        pending = _Pending(
            accepted.instance, item, meta_hook(accepted.message_id, accepted.phone, step, stamp)
        )
        if step.late:
            self._later(step.late, pending)  # later steps keep their times: out of order
        else:
            self._enqueue(pending)
        for copy in range(1, step.repeat):
            # The same ack again, in its own call, as a provider retrying a webhook it
            # thinks was lost.
            self._later(step.late + 0.05 * copy, pending)

    def _later(self, delay: float, pending: _Pending) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(timer)
            self._enqueue(pending)

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    def _enqueue(self, pending: _Pending) -> None:
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.state.count("acks_dropped")

    async def _work(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.state.config.ack_batch:
                try:
                    batch.append(self.queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            by_instance: dict[str, list[_Pending]] = {}
            for pending in batch:
                by_instance.setdefault(pending.instance, []).append(pending)
            for instance, items in by_instance.items():
                channel = self.state.instance(instance)
                payload = self._payload(
                    instance, items, raw=channel.settings.get("rawHooks") is True
                )
                for url in list(channel.webhooks):
                    await self._post(url, payload, len(items), attempt=0)

    @staticmethod
    def _payload(instance: str, items: list[_Pending], *, raw: bool) -> dict[str, Any]:
        if not raw:
            return {"instanceId": instance, "ack": [p.item for p in items]}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": instance},
            "statuses": [p.hook for p in items],
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": instance, "changes": [{"field": "messages", "value": value}]}],
        }

    async def post_now(self, url: str, payload: dict[str, Any]) -> int | None:
        """Post ``payload`` (inbound messages) at once and return the receiver's status (None:
        unreachable); a failure is tried again later, as an ack's is."""
        return await self._post(url, payload, 0, 0)

    async def _post(self, url: str, payload: dict[str, Any], acks: int, attempt: int) -> int | None:
        if self._session is None:
            raise RuntimeError("AckPoster.start() was not awaited")
        status: int | None
        try:
            async with self._session.post(
                url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        self.state.record_posted(Posted(url, payload, status), acks)
        ok = status is not None and 200 <= status < 300
        if not ok and attempt < self.state.config.ack_retries and not self.state.closing.is_set():
            task = asyncio.create_task(self._post_later(url, payload, acks, attempt + 1))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        return status

    async def _post_later(self, url: str, payload: dict[str, Any], acks: int, attempt: int) -> None:
        await asyncio.sleep(0.2 * 2**attempt)
        await self._post(url, payload, acks, attempt)
