"""The plug-in contract: what a trigger or a channel plug-in is, and the values the engine and
the plug-ins exchange.

An entry point of group ``nextstep.triggers`` names a class satisfying :class:`TriggerClass`;
one of ``nextstep.channels`` a class satisfying :class:`ChannelClass`. The engine knows a
plug-in only through these Protocols (and the optional abilities of :mod:`.abilities`), never
by its name. Attributes a Protocol lists are class attributes of the plug-in class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from nextstep.engine.clock import Clock
from nextstep.engine.model import Event, Message, Outcome, Progress

if TYPE_CHECKING:
    from nextstep.engine.ledger.base import Store
    from nextstep.engine.rules.expressions import CompiledTemplate, Scope

ConfigProblem = tuple[tuple[str | int, ...], str]
"""A problem inside a config block: the path of the key concerned (relative to the block) and
what is wrong with it. The engine locates it in the user's file."""

Whitespace = Literal["normalise", "reject"]
"""A rule's ``whitespace:``: what a channel with rules for parameters does with newlines, tabs
and long runs of spaces in one (repair them, or refuse the message)."""


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What one rule did with one event."""

    rule_id: str
    status: Literal["queued", "skipped", "duplicate", "error"]
    notification_id: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EventResult:
    """What every rule on a source did with one event."""

    results: tuple[RuleResult, ...]

    @property
    def errors(self) -> list[RuleResult]:
        return [r for r in self.results if r.status == "error"]


# The engine's side of the trigger contract: match, render and write a batch of events to the
# ledger, committing ``progress`` in the same transaction; returns one result per event.
Emit = Callable[[Sequence[Event], Sequence[Progress]], Awaitable[list[EventResult]]]


@dataclass(frozen=True, slots=True)
class TriggerContext:
    """What a trigger is given besides its config: the ledger (for its progress), the clock,
    the config's folder (relative paths), the rules sharing it, and ``extra`` settings
    (``max_body``: the server's HTTP body limit)."""

    store: Store
    clock: Clock
    base_dir: str
    rule_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class Trigger(Protocol):
    """A source of events. ``run`` produces events through ``emit`` until cancelled."""

    async def run(self, emit: Emit) -> None: ...


@runtime_checkable
class TriggerClass(Protocol):
    """A trigger plug-in: the class an entry point of ``nextstep.triggers`` names. Its key in
    a rule's ``trigger:`` block is the entry point's name."""

    config_schema: Mapping[str, Any]
    """JSON Schema (Draft 2020-12) of the block under ``trigger: {kind: …}``; it may ``$ref``
    the core schema's ``$defs`` (``#/$defs/duration``…)."""

    @staticmethod
    def source_key(config: Mapping[str, Any]) -> str:
        """Identity of the source; rules whose trigger has the same key share one trigger."""
        ...

    @staticmethod
    def check(config: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
        """What ``nextstep validate`` reports about a block beyond ``config_schema``: everything
        the constructor would refuse, and deeper checks (no network). It gets every block that
        is a mapping, even one the schema refused (read any shape, as the constructor must);
        problems at places the schema explained are dropped. ``base_dir`` is the config's
        folder."""
        ...

    def __call__(self, config: Mapping[str, Any], context: TriggerContext) -> Trigger: ...


@dataclass(frozen=True, slots=True)
class ChannelTraits:
    """What the engine needs to know of a channel type besides its schemas.

    ``needs_phone``: the rule's ``to:`` is the recipient's phone and a rule sending through the
    channel must have one (``purpose`` says why, in that problem: "sends text messages").
    ``reports_delivery``: delivered/read statuses arrive for its messages, so a fallback sent
    through it keeps the rule's ``expect``/``within``. ``recipient_spacing``: least seconds
    between two sends to one recipient when the channel's settings do not say.
    """

    needs_phone: bool = False
    reports_delivery: bool = False
    recipient_spacing: float = 0.0
    purpose: str = "sends to phone numbers"


@dataclass(frozen=True, slots=True)
class Preview:
    """What ``nextstep render`` shows of a message: what the request goes to (``POST
    https://…``, or a description) and its exact body. Never a secret."""

    target: str
    body: Any


@runtime_checkable
class CompiledSend(Protocol):
    """A ``send:`` block compiled once at load by its channel's ``compile_send``."""

    def render(self, scope: Scope) -> dict[str, Any]:
        """The message's fields for one event (``Message.fields``); raises RenderError naming
        the rule and the field."""
        ...


class SendCompiler(Protocol):
    """What the engine hands ``compile_send`` for one ``send:`` block. Key paths are relative to
    the block (``("params", "1")``); the engine locates them in the rule file."""

    rule_id: str
    whitespace: Whitespace  # the rule's ``whitespace:``
    path: str  # where the block is, for messages: ``send``, ``policy.fallback[0].send``
    valid_for: float | None
    """The rule's ``policy.valid_for`` in seconds (None when unset, or when it does not parse:
    that problem is reported at ``policy.valid_for``). A notification not sent within it of
    its creation expires; a channel whose provider can expire messages may pass it on."""

    def template(self, source: Any, key_path: tuple[str | int, ...]) -> CompiledTemplate | None:
        """A template compiled (numbers count as text), or None when it is not text or does
        not compile (the problem is noted)."""
        ...

    def structure(self, value: Any, key_path: tuple[str | int, ...]) -> Any:
        """``value`` with every string leaf compiled as a template (mappings and lists kept)."""
        ...

    def problem(self, key_path: tuple[str | int, ...], message: str) -> None:
        """Note a problem at ``key_path``; the rule is then not loaded."""
        ...


class Channel(Protocol):
    """A way to reach someone. ``send`` never raises for a provider answer: it classifies it."""

    name: str

    async def send(self, message: Message) -> Outcome: ...

    async def probe(self) -> bool:
        """True when the channel's account works again (closes an open circuit)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ChannelClass(Protocol):
    """A channel plug-in: the class an entry point of ``nextstep.channels`` names. Its
    ``type:`` in ``nextstep.yaml`` is the entry point's name."""

    config_schema: Mapping[str, Any]
    """JSON Schema of the channel's own settings in ``nextstep.yaml`` (besides ``type`` and the
    dispatcher's ``rate``, ``max_in_flight`` and ``recipient_spacing``, which the engine merges
    in); unknown keys are refused unless it sets ``additionalProperties``."""

    send_schema: Mapping[str, Any]
    """JSON Schema of a ``send:`` block's keys besides ``channel`` (``required`` included)."""

    traits: ChannelTraits

    @staticmethod
    def compile_send(block: Mapping[str, Any], compiler: SendCompiler) -> CompiledSend | None:
        """Compile a ``send:`` block (``channel`` included); None when it cannot be (each
        problem noted with ``compiler.problem``). It runs even when the block broke
        ``send_schema`` (read any shape; problems at places the schema explained are dropped).
        :class:`TemplatedSend` suits channels whose keys are all templates."""
        ...

    @staticmethod
    def preview(message: Message, settings: Mapping[str, Any]) -> Preview:
        """The exact request ``send`` would make for ``message`` on a channel with these
        settings, without sending it and without any secret."""
        ...

    def __call__(self, name: str, config: Mapping[str, Any], *, clock: Clock) -> Channel: ...
