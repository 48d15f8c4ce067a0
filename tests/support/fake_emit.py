"""A recording stand-in for the engine's ``Emit``: triggers are unit-tested against it.

It commits each batch "atomically" like the real one (events and progress together, or
nothing when told to fail), answers one EventResult per event, and doubles as the store a
trigger reads its progress from (``get_progress``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from nextstep.engine.clock import Clock, FakeClock
from nextstep.engine.ledger.base import Store
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import EventResult, RuleResult, TriggerContext

Decide = Callable[[Event], RuleResult | None]


def queue_all(event: Event) -> RuleResult | None:
    """Default decision: every event is queued (``None`` means queued with a fresh id)."""
    return None


def errors_when(field: str, bad: str, reason: str = "bad phone") -> Decide:
    """Events whose ``field`` equals ``bad`` get an error result, the others are queued."""

    def decide(event: Event) -> RuleResult | None:
        if str(event.data.get(field)) == bad:
            return RuleResult("fake-rule", "error", reason=reason)
        return None

    return decide


class FakeEmit:
    """Records every committed batch; ``fail_with`` makes the next calls raise instead."""

    def __init__(self, decide: Decide = queue_all, rule_id: str = "fake-rule") -> None:
        self.decide = decide
        self.rule_id = rule_id
        self.events: list[Event] = []
        self.batches: list[tuple[list[Event], list[Progress]]] = []
        self.progress: dict[str, str] = {}
        self.fail_with: BaseException | None = None
        self.calls = 0
        self._ids = itertools.count(1)
        self._changed: asyncio.Condition | None = None

    async def __call__(
        self, events: Sequence[Event], progress: Sequence[Progress]
    ) -> list[EventResult]:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        results = [EventResult((self._result(event),)) for event in events]
        self.events.extend(events)
        self.batches.append((list(events), list(progress)))
        for p in progress:
            self.progress[p.key] = p.value
        await self._notify()
        return results

    def _result(self, event: Event) -> RuleResult:
        decided = self.decide(event)
        if decided is not None:
            return decided
        return RuleResult(self.rule_id, "queued", notification_id=next(self._ids))

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds after some committed batch."""
        condition = self._condition()
        async with asyncio.timeout(timeout), condition:
            await condition.wait_for(predicate)

    # -- the part of Store a trigger uses -------------------------------------------------
    def get_progress(self, key: str) -> str | None:
        """The last committed value of a progress key."""
        return self.progress.get(key)

    def data(self) -> list[Mapping[str, Any]]:
        """The recorded events' data, in order."""
        return [e.data for e in self.events]


def fake_context(
    emit: FakeEmit, base_dir: str, clock: Clock | None = None, rule_ids: tuple[str, ...] = ()
) -> TriggerContext:
    """A TriggerContext whose store is the fake emit's progress."""
    return TriggerContext(
        store=cast(Store, emit), clock=clock or FakeClock(), base_dir=base_dir, rule_ids=rule_ids
    )
