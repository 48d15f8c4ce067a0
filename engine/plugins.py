"""The two plug-in points, triggers and channels, and their registry.

The engine never imports a concrete adapter: adapters are declared as entry points in
``pyproject.toml`` (groups ``nextstep.triggers`` and ``nextstep.channels``) and looked up here
by their ``type:`` / trigger key. An unknown name fails validation naming the known ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from nextstep.engine.clock import Clock
from nextstep.engine.errors import NextstepError
from nextstep.engine.model import Event, Message, Outcome, Progress

if TYPE_CHECKING:
    from nextstep.engine.ledger.base import Store


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
    """What a trigger is given besides its config."""

    store: Store
    clock: Clock
    base_dir: str
    rule_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class Trigger(Protocol):
    """A source of events. ``run`` produces events through ``emit`` until cancelled."""

    kind: ClassVar[str]

    async def run(self, emit: Emit) -> None: ...


class TriggerFactory(Protocol):
    """A trigger class: its key in a rule's ``trigger:`` block and how to build one."""

    kind: ClassVar[str]

    @staticmethod
    def source_key(config: Mapping[str, Any]) -> str:
        """Identity of the source; rules whose trigger has the same key share one trigger."""
        ...

    def __call__(self, config: Mapping[str, Any], context: TriggerContext) -> Trigger: ...


class Channel(Protocol):
    """A way to reach someone. ``send`` never raises for a provider answer: it classifies it."""

    name: str

    async def send(self, message: Message) -> Outcome: ...

    async def probe(self) -> bool:
        """True when the channel's account works again (closes an open circuit)."""
        ...

    async def aclose(self) -> None: ...


class ChannelFactory(Protocol):
    """A channel class: its ``type:`` name, a side-effect-free preview, and how to build one."""

    kind: ClassVar[str]

    @staticmethod
    def preview(message: Message) -> dict[str, Any]:
        """The exact request body ``send`` would post for ``message`` (never any secret)."""
        ...

    def __call__(self, name: str, config: Mapping[str, Any], *, clock: Clock) -> Channel: ...


@cache
def triggers() -> dict[str, TriggerFactory]:
    """Every installed trigger class by its key (``csv``, ``http``, ``db_poll``…)."""
    return {ep.name: ep.load() for ep in entry_points(group="nextstep.triggers")}


def channel_class(kind: str) -> ChannelFactory:
    """The channel class of ``type: kind``, loading only that plug-in (a channel type no
    config uses must not stop the daemon, e.g. when its optional dependency is missing)."""
    found = entry_points(group="nextstep.channels", name=kind)
    if not found:
        raise NextstepError(f"no channel type {kind!r} is installed")
    factory: ChannelFactory = next(iter(found)).load()
    return factory


@cache
def channels() -> dict[str, ChannelFactory]:
    """Every installed channel class by its ``type:`` (``1msg``, ``webhook``, ``smtp``…)."""
    return {ep.name: ep.load() for ep in entry_points(group="nextstep.channels")}
