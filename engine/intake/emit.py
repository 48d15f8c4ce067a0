"""The engine's side of the trigger contract: the ``Emit`` a trigger is given.

Every rule of the source evaluates every event; what matched is written to the ledger in one
``enqueue`` per batch, together with the trigger's progress, so a crash neither loses nor
repeats a notification. A duplicate (same rule and dedupe key) is recorded as skipped, a
render error is reported for that event and rule only: one bad event never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import lru_cache

from nextstep.engine.clock import Clock
from nextstep.engine.errors import NextstepError, RenderError, StoreError
from nextstep.engine.ledger.base import Enqueued, NewNotification, Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.metrics import NOTIFICATIONS
from nextstep.engine.model import Event, Progress, State
from nextstep.engine.plugins import Emit, EventResult, RuleResult
from nextstep.engine.rules.render import Skipped, evaluate
from nextstep.engine.rules.rule import Rule

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
            return _skipped(rule.id, found.reason)
        items.append(found)
        return len(items) - 1

    async def __call__(
        self, events: Sequence[Event], progress: Sequence[Progress]
    ) -> list[EventResult]:
        now = self._clock.now()
        items: list[NewNotification] = []
        if len(self._rules) == 1:
            (rule,) = self._rules
            slots = [[self._evaluate(rule, event, now, items)] for event in events]
        else:
            slots = [
                [self._evaluate(r, event, now, items) for r in self._rules] for event in events
            ]
        enqueued: list[Enqueued] = []
        if items or progress or self._unsaved:
            enqueued = await self._commit(items, progress)
        results, queued = _results(slots, items, enqueued)
        if self._on_queued is not None and queued:
            self._on_queued()
        return results

    async def _commit(
        self, items: list[NewNotification], progress: Sequence[Progress]
    ) -> list[Enqueued]:
        """Write a batch once the writes before it with the same progress keys are done.

        A trigger may hand over its next batch while the previous one is still being written,
        so that rendering overlaps the ledger's work; the writes of one progress key still
        commit one after the other (the runner's ``progress_writes`` holds the last one under
        way), and each only if the one before it did: a batch never moves the progress past
        rows that were not written."""
        last_write = self._runner.progress_writes
        keys = [p.key for p in progress]
        earlier = {found for key in keys if (found := last_write.get(key)) is not None}
        mine: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        last_write.update((key, mine) for key in keys)
        written = False
        try:
            for before in earlier:
                if not await asyncio.shield(before):
                    raise StoreError("not written: the batch before it was not committed")
            versions = self._unsaved
            enqueued = await self._runner.call(
                _write, self._runner.store, versions, items, progress
            )
            written = True
            if self._unsaved is versions:
                self._unsaved = ()
            return enqueued
        finally:
            mine.set_result(written)
            for key in keys:
                if last_write.get(key) is mine:
                    del last_write[key]


def _results(
    slots: list[list[_Slot]], items: list[NewNotification], enqueued: list[Enqueued]
) -> tuple[list[EventResult], bool]:
    """Every event's results and whether anything was queued; counts the notifications once
    per batch (a labelled counter costs more than the rest of a row's bookkeeping)."""
    counted: dict[tuple[str, str], int] = {}
    if slots and len(slots[0]) == 1:  # one rule: no inner list per event
        results = [
            EventResult(
                (slot if isinstance(slot, RuleResult) else _finish(slot, items, enqueued, counted),)
            )
            for (slot,) in slots
        ]
    else:
        results = [
            EventResult(
                tuple(
                    [
                        s if isinstance(s, RuleResult) else _finish(s, items, enqueued, counted)
                        for s in row
                    ]
                )
            )
            for row in slots
        ]
    for labels, count in counted.items():
        NOTIFICATIONS.labels(*labels).inc(count)
    return results, any(state == _QUEUED for _, state in counted)


_QUEUED, _SKIPPED = State.QUEUED.value, State.SKIPPED.value


def _finish(
    slot: int,
    items: list[NewNotification],
    enqueued: list[Enqueued],
    counted: dict[tuple[str, str], int],
) -> RuleResult:
    rule_id, done = items[slot].rule_id, enqueued[slot]
    if done.state is State.QUEUED:
        labels = (rule_id, _QUEUED)
        counted[labels] = counted.get(labels, 0) + 1
        return RuleResult(rule_id, "queued", done.id)
    labels = (rule_id, _SKIPPED)
    counted[labels] = counted.get(labels, 0) + 1
    return RuleResult(rule_id, "duplicate", done.id, reason=f"duplicate of #{done.duplicate_of}")


@lru_cache(maxsize=1024)
def _skipped(rule_id: str, reason: str) -> RuleResult:
    # Immutable and the same for every event a condition turns away: made once.
    return RuleResult(rule_id, "skipped", None, reason)


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
