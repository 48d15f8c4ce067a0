"""An in-memory channel for dispatcher tests: a script of outcomes per recipient, and a record
of every send with the clock time it was made."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from nextstep.engine.clock import Clock
from nextstep.engine.model import Message, Outcome, OutcomeKind

ACCEPTED = Outcome(OutcomeKind.ACCEPTED)


@dataclass(frozen=True, slots=True)
class Sent:
    """One call of ``send``: when, what, and what the fake answered."""

    at: float
    message: Message
    outcome: Outcome


class FakeChannel:
    """A scripted channel: each recipient's sends answer the next outcome of its script, then
    ``default`` (accepted). ``gate``, when set, holds every send until it is opened."""

    def __init__(self, clock: Clock, name: str = "whatsapp", default: Outcome = ACCEPTED) -> None:
        self.name = name
        self.clock = clock
        self.default = default
        self.sends: list[Sent] = []
        self.probe_ok = False
        self.probes = 0
        self.closed = False
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._scripts: dict[str, deque[Outcome]] = defaultdict(deque)
        self._ids = itertools.count(1)

    def script(self, recipient: str, outcomes: Iterable[Outcome]) -> None:
        """Answer the next sends to ``recipient`` with ``outcomes``, in order."""
        self._scripts[recipient].extend(outcomes)

    def sends_to(self, recipient: str) -> list[Sent]:
        """The sends made to one recipient."""
        return [s for s in self.sends if s.message.to == recipient]

    async def send(self, message: Message) -> Outcome:
        at = self.clock.now()
        script = self._scripts.get(message.to)
        outcome = script.popleft() if script else self.default
        if outcome.kind is OutcomeKind.ACCEPTED and outcome.provider_id is None:
            outcome = Outcome(OutcomeKind.ACCEPTED, provider_id=f"wamid.fake{next(self._ids)}")
        self.sends.append(Sent(at, message, outcome))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.in_flight -= 1
        return outcome

    async def probe(self) -> bool:
        self.probes += 1
        return self.probe_ok

    async def aclose(self) -> None:
        self.closed = True
