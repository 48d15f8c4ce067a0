"""Optional abilities of plug-ins: runtime-checkable Protocols the engine tests with
``isinstance`` (on the plug-in class or on an instance, as each one says), never by probing
attributes. A plug-in has an ability by defining its members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # only in signatures: every command imports this module, few serve HTTP
    from starlette.routing import BaseRoute

from nextstep.engine.model import (
    Ack,
    AckReport,
    Event,
    InboundMessage,
    InboundReport,
    Message,
    Outcome,
)
from nextstep.engine.plugins.contract import CompiledSend, Emit, Trigger


@runtime_checkable
class ServesRoutes(Protocol):
    """A trigger class whose triggers receive HTTP requests on the daemon's server."""

    @staticmethod
    def routes(live: Mapping[str, Trigger], token: str) -> list[BaseRoute]:
        """The routes to mount. ``live`` maps source keys to the running triggers of this kind
        and is read on every request (reloads swap triggers in it); ``token`` is
        ``server.event_token``."""
        ...


@dataclass(frozen=True, slots=True)
class EventFields:
    """The fields a trigger's events have, as its config declares them (``validate`` checks
    every ``event.<name>`` a rule reads against them). ``closed``: no other field can come (a
    JSON Schema with ``additionalProperties: false``, a query's columns); open: others may (a
    file's columns that a mapping does not name), so only a near miss of a declared name
    (``event.phon`` for ``phone``) is a problem."""

    names: frozenset[str]
    closed: bool = True
    source: str = "the trigger"  # how problems name the declaration ("the http schema")


@runtime_checkable
class DeclaresFields(Protocol):
    """A trigger class that can tell, from a rule's trigger config alone, which fields its
    events have."""

    @staticmethod
    def event_fields(config: Mapping[str, Any]) -> EventFields | None:
        """The fields, or None when the config does not say (an open schema, ``SELECT *``)."""
        ...


@runtime_checkable
class ReportsStatus(Protocol):
    """A trigger or channel instance that reports its state; merged into ``/healthz``."""

    def status(self) -> dict[str, Any]:
        """JSON-ready details (a trigger reporting ``{"state": "error"}`` makes health
        degraded)."""
        ...


class ProviderTemplate(Protocol):
    """A message template a provider keeps (what ``nextstep templates`` lists)."""

    @property
    def name(self) -> str: ...

    @property
    def language(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def body(self) -> str:
        """The approved body text."""
        ...

    @property
    def variables(self) -> int: ...

    @property
    def approved(self) -> bool:
        """True when the template can be sent."""
        ...

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        ...


@dataclass(frozen=True, slots=True)
class TemplateCheck:
    """One send compared with the provider's templates: which template, and what is wrong
    (``errors``) or worth knowing (``notes``)."""

    template: str
    language: str
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@runtime_checkable
class ListsTemplates(Protocol):
    """A channel whose provider keeps approved templates (``nextstep templates``): the instance
    lists them, the class compares one of its compiled sends with them."""

    async def list_templates(self) -> Sequence[ProviderTemplate]:
        """Every template of the account, approved or not."""
        ...

    @staticmethod
    def check_send(
        send: CompiledSend, templates: Sequence[ProviderTemplate]
    ) -> TemplateCheck | None:
        """The comparison of one compiled send with the templates; None when the send does
        not use a template."""
        ...


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """A button of an approved template, as the client sees it under the message: ``kind`` is
    the provider's (``URL``, ``QUICK_REPLY``…), ``url`` empty unless it opens a page."""

    kind: str
    text: str
    url: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"kind": self.kind, "text": self.text, "url": self.url}


@runtime_checkable
class ShowsButtons(Protocol):
    """A channel (instance) whose messages carry buttons fixed in the provider's template: the
    console's trace shows them under the message text."""

    async def buttons(self, fields: Mapping[str, Any]) -> Sequence[TemplateButton]:
        """The buttons the message with these ``Message.fields`` shows; empty when it has none
        or its template is unknown."""
        ...


@runtime_checkable
class AckRecorder(Protocol):
    """Where a channel's ack route hands the acks it parsed (the engine's group commit)."""

    async def record(self, acks: Sequence[Ack]) -> AckReport:
        """Write ``acks`` to the ledger; returns once they are committed (answer 2xx only
        then). Raises StoreError when the ledger cannot take them (answer 503)."""
        ...


@runtime_checkable
class ReceivesAcks(Protocol):
    """A channel class whose provider posts delivery statuses to the daemon's server."""

    @staticmethod
    def ack_routes(recorder: AckRecorder, secret: str, max_body: int) -> list[BaseRoute]:
        """The routes to mount (once per channel class): they check ``secret``
        (``server.webhook_secret``, in the path), refuse bodies over ``max_body`` bytes, parse
        the provider's payload and give its acks to ``recorder``."""
        ...


@runtime_checkable
class MessageRecorder(Protocol):
    """Where a channel's webhook route hands the messages people sent (when the recorder it
    was given has this ability besides :class:`AckRecorder`)."""

    async def record_messages(self, messages: Sequence[InboundMessage]) -> InboundReport:
        """Keep ``messages`` in the ledger (once each: a provider retry is counted, not kept
        twice); returns once they are committed. Raises StoreError (answer 503)."""
        ...


@runtime_checkable
class ReceivesMessages(Protocol):
    """A channel class whose ack route (:class:`ReceivesAcks`) also receives the messages
    people send to its numbers, and gives them, as :class:`InboundMessage` values (outgoing
    echoes left out), to a recorder that is a :class:`MessageRecorder`."""

    @staticmethod
    def message_account(settings: Mapping[str, Any]) -> str:
        """The ``InboundMessage.account`` of the messages a channel with these settings
        receives (the engine finds a message's channel by it)."""
        ...


@runtime_checkable
class SendsText(Protocol):
    """A channel (instance) that can answer a person with free text, where the provider
    allows it (for some: within 24 hours of the person's last message)."""

    async def send_text(self, to: str, text: str, *, quoted_id: str | None = None) -> Outcome:
        """Send ``text`` to ``to`` (classified like ``send``; never raises for an answer)."""
        ...


@runtime_checkable
class LooksUpStatus(Protocol):
    """A channel that can be asked about one message (for messages no ack has moved)."""

    async def lookup_status(self, provider_id: str) -> list[Ack]:
        """The statuses the provider holds for the message; raises DeliveryError when the
        question fails."""
        ...


@dataclass(frozen=True, slots=True)
class SentSearch:
    """What a provider's message history says of one message we may have sent: the ids of
    the messages that match it (to its recipient, its template, since the given time), and
    whether the history is ``complete`` (kept for every message: then no match means it was
    never sent)."""

    matches: tuple[str, ...] = ()
    complete: bool = False


@runtime_checkable
class SearchesSent(Protocol):
    """A channel whose provider keeps a history of what was sent, searched to settle a
    notification in doubt (issue 15.11). ``safe_delay``: seconds after the attempt before a
    message missing from the history may be taken as never sent."""

    @property
    def safe_delay(self) -> float:
        """Seconds after an attempt before the history is complete for it."""
        ...

    async def find_sent(self, message: Message, since: float) -> SentSearch:
        """Our messages to ``message``'s recipient like it, sent at or after ``since``;
        raises DeliveryError when the question fails."""
        ...


@dataclass(frozen=True, slots=True)
class AckRegistration:
    """What registering the ack webhook did: done, or why not (logged as it is)."""

    registered: bool
    detail: str = ""


@runtime_checkable
class RegistersAcks(Protocol):
    """A channel that tells its provider where to post acks, when the daemon starts."""

    async def register_acks(
        self, public_url: str | None, listen: str, secret: str
    ) -> AckRegistration:
        """Register this server's ack route with the provider. ``public_url`` is
        ``server.public_url`` (None when unset), ``listen`` the address the server listens
        on; raises NextstepError when the provider refuses."""
        ...


class FileSummary(Protocol):
    """What reading one file did (``nextstep ingest`` prints it)."""

    @property
    def rows(self) -> int: ...

    @property
    def queued(self) -> int: ...

    @property
    def skipped(self) -> int: ...

    @property
    def duplicates(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def resumed_after(self) -> int:
        """Rows a previous, interrupted run had committed."""
        ...

    @property
    def already_done(self) -> bool:
        """The same content was read before: nothing was done."""
        ...

    @property
    def failed(self) -> str:
        """Why the file goes to ``failed/`` (the rest of it could not be read, a column a rule
        needs is missing…); empty when it does not."""
        ...

    @property
    def errors_file(self) -> str | None:
        """Where the refused rows are, with the reason, if any."""
        ...

    @property
    def notification_ids(self) -> Sequence[int]: ...

    @property
    def notes(self) -> Sequence[str]:
        """What is worth knowing about the file as a whole (a repeated column…)."""
        ...


@runtime_checkable
class ReadsFiles(Protocol):
    """A trigger class whose triggers can read one given file (``nextstep ingest FILE``)."""

    file_suffixes: tuple[str, ...]
    """Suffixes of the files it reads (lower case, with the dot: ``(".xlsx",)``)."""

    @staticmethod
    def file_config(path: Path) -> Mapping[str, Any]:
        """The trigger block to read ``path`` with when the rule's own trigger is of another
        kind."""
        ...


@runtime_checkable
class FileReader(Protocol):
    """A trigger (instance) of a :class:`ReadsFiles` class."""

    async def ingest(
        self,
        path: Path,
        emit: Emit,
        *,
        progress_prefix: str | None = None,
        on_batch: Callable[[Any, int, int], None] | None = None,
    ) -> FileSummary:
        """Run every row of ``path`` through ``emit``, committed in batches with the file's
        progress under ``progress_prefix`` (the file is not moved); ``on_batch(summary,
        bytes_read, size)`` after each batch."""
        ...


@dataclass(frozen=True, slots=True)
class FileRow:
    """One row of a file as a trigger reads it, without any side effect (``nextstep ingest
    --dry-run``): its event, or why it would be quarantined (``problem``); ``row`` 0 is about
    the whole file (a ``problem``: the file would go to ``failed/``; or a ``note``)."""

    row: int
    line: int
    event: Event | None = None
    problem: str = ""
    note: str = ""


@runtime_checkable
class ReadsRows(Protocol):
    """A :class:`ReadsFiles` class that can read a file's rows without ingesting it: no
    ledger, no errors file, the file left where it is."""

    @staticmethod
    def read_rows(config: Mapping[str, Any], path: Path) -> Iterator[FileRow]:
        """The rows of ``path`` read with the trigger block ``config``, in order."""
        ...
