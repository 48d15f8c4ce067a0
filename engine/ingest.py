"""The engine's side of the trigger contract: the ``Emit`` a trigger is given.

Every rule of the source evaluates every event; what matched is written to the ledger in one
``enqueue`` per batch, together with the trigger's progress, so a crash neither loses nor
repeats a notification. A duplicate (same rule and dedupe key) is recorded as skipped, a
render error is reported for that event and rule only: one bad event never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from engine.clock import Clock
from engine.errors import NextstepError, RenderError
from engine.ledger.base import Enqueued, NewNotification, Store
from engine.ledger.runner import LedgerRunner
from engine.metrics import NOTIFICATIONS
from engine.model import Event, Progress, State
from engine.plugins import Emit, EventResult, RuleResult
from engine.render import Skipped, evaluate
from engine.rules import Rule

log = logging.getLogger(__name__)

# Per event and rule: a finished result, or the index of its notification in the batch.
_Slot = RuleResult | int


def _write(
    store: Store,
    versions: Sequence[Rule],
    items: Sequence[NewNotification],
    progress: Sequence[Progress],
) -> list[Enqueued]:
    for rule in versions:
        store.save_rule_version(rule.id, rule.version, rule.definition)
    return store.enqueue(items, progress)


class _Ingest:
    """The Emit of one set of rules (one trigger source)."""

    def __init__(
        self,
        runner: LedgerRunner,
        rules: Sequence[Rule],
        clock: Clock,
        default_country: str | None,
        on_queued: Callable[[], None] | None,
    ) -> None:
        self._runner = runner
        self._rules = tuple(rules)
        self._clock = clock
        self._default_country = default_country
        self._on_queued = on_queued
        self._unsaved: tuple[Rule, ...] = self._rules

    def _evaluate(
        self, rule: Rule, event: Event, now: float, items: list[NewNotification]
    ) -> _Slot:
        try:
            found = evaluate(rule, event, now=now, default_country=self._default_country)
        except RenderError as exc:
            return RuleResult(rule.id, "error", reason=f"{exc.field}: {exc.reason}")
        except NextstepError as exc:
            return RuleResult(rule.id, "error", reason=str(exc))
        except Exception as exc:
            # A bug in a filter or a template must cost this event, not the whole batch.
            log.exception("rule %s failed on an event", rule.id)
            return RuleResult(rule.id, "error", reason=f"unexpected error: {exc!r}")
        if isinstance(found, Skipped):
            return RuleResult(rule.id, "skipped", reason=found.reason)
        items.append(found)
        return len(items) - 1

    async def __call__(
        self, events: Sequence[Event], progress: Sequence[Progress]
    ) -> list[EventResult]:
        now = self._clock.now()
        items: list[NewNotification] = []
        slots = [
            [self._evaluate(rule, event, now, items) for rule in self._rules] for event in events
        ]
        enqueued: list[Enqueued] = []
        if items or progress or self._unsaved:
            enqueued = await self._runner.call(
                _write, self._runner.store, self._unsaved, items, progress
            )
            self._unsaved = ()
        results = [
            EventResult(tuple(self._result(slot, items, enqueued) for slot in row)) for row in slots
        ]
        if self._on_queued is not None and any(e.state is State.QUEUED for e in enqueued):
            self._on_queued()
        return results

    @staticmethod
    def _result(slot: _Slot, items: list[NewNotification], enqueued: list[Enqueued]) -> RuleResult:
        if isinstance(slot, RuleResult):
            return slot
        rule_id, done = items[slot].rule_id, enqueued[slot]
        if done.state is State.QUEUED:
            NOTIFICATIONS.labels(rule_id, State.QUEUED.value).inc()
            return RuleResult(rule_id, "queued", done.id)
        NOTIFICATIONS.labels(rule_id, State.SKIPPED.value).inc()
        return RuleResult(
            rule_id, "duplicate", done.id, reason=f"duplicate of #{done.duplicate_of}"
        )


def make_emit(
    runner: LedgerRunner,
    rules: Sequence[Rule],
    clock: Clock,
    default_country: str | None,
    *,
    on_queued: Callable[[], None] | None = None,
) -> Emit:
    """The Emit for a trigger whose source feeds ``rules``; ``on_queued`` (the dispatcher's
    ``wake``) is called after a batch queued something. The rules' versions are kept in the
    ledger with the first batch."""
    return _Ingest(runner, rules, clock, default_country, on_queued)
