"""What the console needs from the running daemon, handed over as plain callables so the
console imports nothing of the daemon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nextstep.engine.clock import Clock
from nextstep.engine.ledger.reads import ConsoleReads
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.plugins import TemplateButton
from nextstep.engine.rules.config import Config


@dataclass(frozen=True)
class ConsoleHost:
    """The daemon as the console sees it.

    ``runner`` runs the console's ledger calls on a thread of their own (a second connection:
    long reads never hold the dispatcher's writes up); ``reads`` is its store.
    """

    runner: LedgerRunner
    reads: ConsoleReads
    clock: Clock
    config: Callable[[], Config]  # the config in force (follows reloads)
    health: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    reload: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    # The buttons a channel's message shows (channel name, Message.fields); () when unknown.
    buttons: Callable[[str, Mapping[str, Any]], Awaitable[Sequence[TemplateButton]]] = field(
        default=lambda channel, fields: _none()
    )


async def _none() -> Sequence[TemplateButton]:
    return ()
