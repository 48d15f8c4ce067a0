"""Values that cross layers: events in, messages out, outcomes back, notification states."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a client's case, as a trigger saw it.

    ``data`` is what expressions see as ``event`` (a row of a file, a JSON body, a DB row);
    ``trigger`` is what they see as ``trigger`` (kind, source, file, row number…).
    """

    data: Mapping[str, Any]
    trigger: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Progress:
    """A trigger's progress marker, committed in the same transaction as the notifications
    its events created (a file's hash and row, a database cursor, an idempotency key)."""

    key: str
    value: str
    # True: the key must not exist yet (an idempotency key claimed once across workers); when
    # it does, the whole write fails with ``ProgressClaimed`` and nothing is created.
    claim: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered `send:` block, ready for a channel.

    ``fields`` is what the channel's compiled send rendered for one event (usually the keys of
    the ``send:`` block other than ``channel``; see the channel's plug-in). ``to`` is the
    recipient: a ``to`` field, else the rule's ``to:`` as a phone number, else empty.
    """

    channel: str
    to: str
    fields: Mapping[str, Any]


class OutcomeKind(StrEnum):
    """How a channel classified one send attempt."""

    ACCEPTED = "accepted"
    TRANSIENT = "transient"
    IN_DOUBT = "in_doubt"
    RECIPIENT = "recipient"
    TEMPLATE = "template"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The classified answer of a channel to one send attempt. ``pause`` is the channel's
    verdict that the provider wants no sends for a while (a rate limit), whoever they are for.
    ``unreachable`` is its verdict that the channel itself could not be reached (connection
    refused, DNS, TLS, connect timeout: nothing was sent): like an account failure, it stops
    the channel until a probe succeeds and costs the notification no attempt."""

    kind: OutcomeKind
    reason: str = ""
    provider_id: str | None = None
    code: int | None = None
    http_status: int | None = None
    retry_after: float | None = None
    answer: str = ""
    pause: float | None = None  # stop sending through this channel for this many seconds
    unreachable: bool = False  # the channel is down (kind transient): open its circuit

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.ACCEPTED


@dataclass(frozen=True, slots=True)
class Ack:
    """One status report about one provider message id (from a webhook, or a lookup).

    ``failure`` is the channel's reading of a ``failed`` ack's error (recipient, template…);
    None means it could not tell, and the message counts as unreachable (recipient).
    """

    provider_id: str
    status: str
    error: str = ""
    code: int | None = None
    source: str = "webhook"  # webhook | poll
    failure: OutcomeKind | None = None

    def detail(self) -> dict[str, Any]:
        """How the ack is kept in a notification's history."""
        doc: dict[str, Any] = {"status": self.status, "source": self.source}
        if self.error:
            doc["error"] = self.error
        if self.code is not None:
            doc["code"] = self.code
        return doc


@dataclass(frozen=True, slots=True)
class AckReport:
    """What one batch of acks did: matched a notification, moved its state, or was kept."""

    matched: int = 0
    moved: int = 0
    kept: int = 0


class State(StrEnum):
    """States of a notification in the ledger.

    ``queued`` and ``sending`` are open; ``sent`` (accepted by the provider), ``delivered``
    and ``read`` advance monotonically; the others are terminal.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    IN_DOUBT = "in_doubt"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({State.QUEUED, State.SENDING})
DELIVERY_ORDER = {State.SENT: 1, State.DELIVERED: 2, State.READ: 3}


ALL_CHANNELS = "*"
"""The channel of an opt-out that stops every channel (a person who wants no messages at all)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a person sent to one of our numbers, as a channel read it from its provider.

    ``sender`` is the person's number in international digits; ``text`` the message's text (a
    media message's caption, else empty); ``type`` the provider's kind (``chat``, ``image``,
    ``button``…); ``sent_at`` when the person sent it (Unix seconds; None when the provider
    did not say); ``quoted_id`` the provider id of the message it answers (one of ours, when
    the person replied to it); ``account`` which of the provider's accounts received it (the
    engine finds the channel by it); ``name`` the sender's display name.
    """

    provider_id: str
    sender: str
    text: str = ""
    type: str = "text"
    sent_at: float | None = None
    quoted_id: str | None = None
    account: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class InboundReport:
    """What one batch of inbound messages did: stored, already known (a provider retry), or
    not taken (no channel of ours receives them)."""

    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
