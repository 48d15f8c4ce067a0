"""The ``inbound`` trigger: messages people send to one of our channels become events.

::

    trigger:
      inbound:
        channel: whatsapp      # a channel that receives messages (1msg)
        every: 1s              # how often the ledger is read for new messages (default 1s)

The channel's webhook keeps each message in the ledger once (a provider's resend is not kept
twice); this trigger reads the kept messages in the order they were committed and emits one
event each, with the id of the last one as its progress (committed with the notifications it
made), so every message is one event, across restarts. On its first run a trigger starts
after the newest message already kept: adding a rule does not replay old messages.
Outgoing echoes never reach it (the channel leaves them out).

The event (``event.…``): ``id`` (the provider's message id), ``from`` (the sender's number,
international digits), ``name`` (their display name), ``text``, ``type`` (chat, image,
button…), ``time`` (when they sent it, ISO 8601 UTC), ``channel``, ``keyword`` (``stop`` or
``start`` when the message was one of the channel's words, else null) and ``reply_to``: when
the person replied to (quoted) one of our messages, ``{id, rule, dedupe_key, event}`` of that
notification (``event`` is the event it was made from), else null. ``trigger`` is ``{kind:
inbound, source: <channel>, message: <ledger id>}``.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from nextstep.adapters.triggers.config import ConfigReader, read_progress
from nextstep.engine.ledger.base import InboundRecord
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import ConfigProblem, Emit, TriggerContext

DEFAULT_EVERY = 1.0
BATCH = 100

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "Messages people send to one of the channels (their replies).",
    "type": "object",
    "additionalProperties": False,
    "required": ["channel"],
    "properties": {
        "channel": {
            "type": "string",
            "description": "A channel of nextstep.yaml that receives messages.",
        },
        "every": {
            "$ref": "#/$defs/duration",
            "description": "How often new messages are looked for (default 1s).",
        },
    },
}


def _read(config: Mapping[str, Any]) -> tuple[str, float, list[ConfigProblem]]:
    read = ConfigReader("inbound", config, tuple(CONFIG_SCHEMA["properties"]))
    channel = read.text("channel", required=True)
    every = read.duration("every", DEFAULT_EVERY)
    if every <= 0:
        read.fail("every", "must be more than 0s")
    return channel, every, read.problems


def event_of(record: InboundRecord) -> Event:
    """The event of one kept message (see the module docstring)."""
    reply = record.reply_to
    sent = datetime.datetime.fromtimestamp(record.sent_at, datetime.UTC)
    data: dict[str, Any] = {
        "id": record.provider_id,
        "from": record.sender,
        "name": record.name,
        "text": record.text,
        "type": record.type,
        "time": sent.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "channel": record.channel,
        "keyword": record.keyword,
        "reply_to": None
        if reply is None
        else {
            "id": reply.id,
            "rule": reply.rule_id,
            "dedupe_key": reply.dedupe_key,
            "event": dict(reply.event),
        },
    }
    return Event(data, {"kind": "inbound", "source": record.channel, "message": record.id})


class InboundTrigger:
    """Reads one channel's kept inbound messages from the ledger, in commit order."""

    kind: ClassVar[str] = "inbound"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA

    @staticmethod
    def source_key(config: Mapping[str, Any]) -> str:
        """Rules on the same channel share one trigger."""
        return f"inbound:{config.get('channel', '')}"

    @staticmethod
    def check(config: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
        """What the constructor would refuse."""
        return _read(config)[2]

    def __init__(self, config: Mapping[str, Any], context: TriggerContext) -> None:
        channel, every, problems = _read(config)
        ConfigReader.raise_problems("inbound", problems)
        self.channel = channel
        self.every = every
        self.context = context
        self.progress_key = f"inbound:{channel}"
        self._stats: dict[str, Any] = {"messages": 0, "last_id": None}

    def status(self) -> dict[str, Any]:
        """Messages turned into events so far, and the last one's ledger id (for health)."""
        return {**self._stats, "channel": self.channel}

    async def _start(self, emit: Emit) -> int:
        """The id to read after: the progress kept, else the newest message kept now."""
        stored = await read_progress(self.context, self.progress_key)
        if stored is not None and stored.isdigit():
            return int(stored)
        newest = await asyncio.to_thread(self.context.store.last_inbound_id)
        await emit([], [Progress(self.progress_key, str(newest))])
        return newest

    async def run(self, emit: Emit) -> None:
        """Emit every new message of the channel until cancelled."""
        after = await self._start(emit)
        store = self.context.store
        while True:
            records = await asyncio.to_thread(
                store.inbound_after, after, channels=[self.channel], limit=BATCH
            )
            if records:
                after = records[-1].id
                await emit(
                    [event_of(r) for r in records], [Progress(self.progress_key, str(after))]
                )
                self._stats["messages"] += len(records)
                self._stats["last_id"] = after
                if len(records) == BATCH:
                    continue
            await self.context.clock.sleep(self.every)
