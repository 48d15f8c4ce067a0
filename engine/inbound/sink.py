"""The engine's ``MessageRecorder``: what happens to a message a person sent.

For each message: find its channel (by the account it came to), read a stop or start word
(the channel's ``keywords``), and keep it in the ledger with what the word asks — opt the
sender out (skipping what is queued for them) or lift their opt-outs — in one transaction
(``Store.record_inbound``); a message the provider posts again changes nothing. Then count,
log, and answer a stop or start word with the channel's confirmation, when it has one and
the channel can send text (``SendsText``): in the background, once, never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nextstep.engine.clock import Clock
from nextstep.engine.ledger.base import InboundStored, NewInbound, OptOut
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import INBOUND, INBOUND_DUPLICATES, OPTOUTS
from nextstep.engine.model import (
    ALL_CHANNELS,
    Ack,
    AckReport,
    InboundMessage,
    InboundReport,
)
from nextstep.engine.optout.entries import count_added
from nextstep.engine.optout.keywords import Keywords, keywords_from
from nextstep.engine.plugins import (
    AckRecorder,
    Channel,
    PluginUnavailable,
    ReceivesMessages,
    SendsText,
    channel_class,
)
from nextstep.engine.redact import mask_phone
from nextstep.engine.rules.config import ChannelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receiver:
    """A configured channel that receives messages, and its keywords (None: turned off)."""

    name: str
    keywords: Keywords | None


def receivers(channels: Mapping[str, ChannelConfig]) -> dict[str, Receiver]:
    """The channels of nextstep.yaml whose type receives messages, by account."""
    found: dict[str, Receiver] = {}
    for name, channel in channels.items():
        try:
            plugin = channel_class(channel.type)
        except PluginUnavailable:
            continue
        if isinstance(plugin, ReceivesMessages):
            account = plugin.message_account(channel.settings)
            found[account] = Receiver(name, keywords_from(channel.settings))
    return found


class InboundSink:
    """Keeps inbound messages (see the module docstring); ``live`` are the open channels (for
    confirmations)."""

    def __init__(
        self,
        runner: LedgerRunner,
        clock: Clock,
        channels: Mapping[str, ChannelConfig],
        live: Mapping[str, Channel],
    ) -> None:
        self._runner, self._clock, self._live = runner, clock, live
        self._receivers = receivers(channels)
        self._keywords = {r.name: r.keywords for r in self._receivers.values()}
        self._replies: set[asyncio.Task[None]] = set()

    def _receiver(self, message: InboundMessage) -> Receiver | None:
        found = self._receivers.get(message.account)
        if found is None and len(self._receivers) == 1:  # one number: no need to tell
            (found,) = self._receivers.values()
        return found

    def _item(self, receiver: Receiver, message: InboundMessage, now: float) -> NewInbound:
        keywords = receiver.keywords
        word = keywords.classify(message.text) if keywords is not None else None
        if keywords is None or word is None:
            return NewInbound(receiver.name, message, now)
        if word == "stop":
            note = " ".join(message.text.split())[:200]
            scope = keywords.optout_channel(receiver.name)
            optout = OptOut(message.sender, scope, now, "keyword", note)
            return NewInbound(receiver.name, message, now, keyword=word, optout=optout)
        lift = (receiver.name, ALL_CHANNELS)
        return NewInbound(receiver.name, message, now, keyword=word, lift=lift)

    async def record_messages(self, messages: Sequence[InboundMessage]) -> InboundReport:
        """Keep ``messages`` and apply their words; returns once committed (StoreError)."""
        now = self._clock.now()
        items: list[NewInbound] = []
        dropped = 0
        for message in messages:
            receiver = self._receiver(message)
            if receiver is None:
                dropped += 1
                log.warning("inbound message for unknown account %r dropped", message.account)
                continue
            items.append(self._item(receiver, message, now))
        if not items:
            return InboundReport(dropped=dropped)
        store = self._runner.store
        results = await self._runner.call(store.record_inbound, items)
        stored = 0
        for item, result in zip(items, results, strict=True):
            if result is None:
                INBOUND_DUPLICATES.labels(item.channel).inc()
                continue
            stored += 1
            self._applied(item, result)
        return InboundReport(stored, len(items) - stored, dropped)

    def _applied(self, item: NewInbound, result: InboundStored) -> None:
        message = item.message
        INBOUND.labels(item.channel, message.type).inc()
        if item.keyword is None:
            return
        who = mask_phone(message.sender)
        if item.optout is not None and result.optout is not None:
            count_added([item.optout], result.optout)
            log.info(
                "%s wrote %r on %s: opted out (%s); %d queued notifications skipped",
                who,
                message.text.strip()[:40],
                item.channel,
                "every channel" if item.optout.channel == ALL_CHANNELS else item.channel,
                len(result.optout.skipped),
            )
        if result.lifted:
            OPTOUTS.labels("removed", "keyword").inc(result.lifted)
        if item.keyword == "start":
            log.info(
                "%s wrote %r on %s: %d opt-outs lifted",
                who,
                message.text.strip()[:40],
                item.channel,
                result.lifted,
            )
        self._confirm(item)

    def _confirm(self, item: NewInbound) -> None:
        keywords = self._keywords.get(item.channel)
        if keywords is None:
            return
        text = keywords.confirm_stop if item.keyword == "stop" else keywords.confirm_start
        channel = self._live.get(item.channel)
        if not text or not isinstance(channel, SendsText):
            return
        task = asyncio.create_task(self._send(channel, item.message, text))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _send(self, channel: SendsText, message: InboundMessage, text: str) -> None:
        try:
            outcome = await channel.send_text(message.sender, text, quoted_id=message.provider_id)
        except Exception:  # a confirmation must never cost the webhook or the daemon
            log.exception("confirmation to %s not sent", mask_phone(message.sender))
            return
        if not outcome.ok:
            log.warning(
                "confirmation to %s not sent: %s", mask_phone(message.sender), outcome.reason
            )
        else:
            log.info("confirmation sent to %s", mask_phone(message.sender))

    async def aclose(self) -> None:
        """Let the confirmations under way finish (each is one request)."""
        if self._replies:
            await asyncio.gather(*self._replies, return_exceptions=True)


class WebhookRecorder:
    """What a channel's webhook route is given: acks go to ``acks``, messages to
    ``messages`` (an ``AckRecorder`` and a ``MessageRecorder`` in one)."""

    def __init__(self, acks: AckRecorder, messages: InboundSink) -> None:
        self._acks, self._messages = acks, messages

    async def record(self, acks: Sequence[Ack]) -> AckReport:
        """Acks, to the ack sink."""
        return await self._acks.record(acks)

    async def record_messages(self, messages: Sequence[InboundMessage]) -> InboundReport:
        """Messages, to the inbound sink."""
        return await self._messages.record_messages(messages)


def webhook_recorder(
    acks: AckRecorder,
    runner: LedgerRunner,
    clock: Clock,
    channels: Mapping[str, ChannelConfig],
    live: Mapping[str, Channel],
) -> tuple[AckRecorder, InboundSink | None]:
    """What the daemon gives the channels' webhook routes: ``acks`` alone, or with an
    :class:`InboundSink` when a configured channel receives messages (then returned too)."""
    if not receivers(channels):
        return acks, None
    sink = InboundSink(runner, clock, channels, live)
    return WebhookRecorder(acks, sink), sink
