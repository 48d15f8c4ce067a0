"""The inbound trigger reads the messages kept in the ledger, in commit order, one event each,
with its progress; it starts after the newest message it finds on its first run."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from nextstep.adapters.triggers.inbound import InboundTrigger, event_of
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError
from nextstep.engine.ledger.base import AttemptResult, NewInbound, Store
from nextstep.engine.model import Event, InboundMessage, Progress, State
from nextstep.engine.plugins import EventResult, TriggerContext
from tests.support.notifications import T0, new_notification
from tests.support.waiting import until


def _keep(
    store: Store, provider_id: str, text: str, channel: str = "whatsapp", **extra: object
) -> None:
    message = InboundMessage(provider_id, "34600111222", text, "chat", T0, **extra)  # type: ignore[arg-type]
    store.record_inbound([NewInbound(channel, message, T0 + 1)])


class Emitted:
    """An emit that commits progress to the ledger and keeps the events."""

    def __init__(self, store: Store) -> None:
        self.store, self.events = store, []  # type: ignore[var-annotated]

    async def __call__(
        self, events: Sequence[Event], progress: Sequence[Progress]
    ) -> list[EventResult]:
        self.store.enqueue([], progress)
        self.events.extend(events)
        return [EventResult(()) for _ in events]


async def test_reads_in_order_from_where_it_started(store: Store) -> None:
    _keep(store, "old", "before the rule existed")
    clock = FakeClock()
    trigger = InboundTrigger(
        {"channel": "whatsapp", "every": "1s"}, TriggerContext(store, clock, ".")
    )
    emit = Emitted(store)
    task = asyncio.create_task(trigger.run(emit))
    try:
        await until(lambda: store.get_progress("inbound:whatsapp") is not None)
        _keep(store, "a", "ok")
        _keep(store, "b", "other channel", channel="second")
        _keep(store, "c", "already sent them")
        await until(lambda: clock.sleepers > 0)
        clock.advance(1)
        await until(lambda: len(emit.events) == 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e.data["id"] for e in emit.events] == ["a", "c"]
    assert store.get_progress("inbound:whatsapp") == str(store.last_inbound_id())
    assert trigger.status()["messages"] == 2
    # a restart goes on from the progress: nothing again
    again = InboundTrigger({"channel": "whatsapp"}, TriggerContext(store, clock, "."))
    assert await again._start(emit) == store.last_inbound_id()


def test_the_event(store: Store) -> None:
    sent = store.enqueue([new_notification(dedupe_key="case-9")])[0].id
    store.lease_due(T0, 1)
    store.record_attempts(
        [AttemptResult(sent, T0, State.SENT, {"kind": "accepted"}, provider_id="wamid.OUT")]
    )
    _keep(store, "in", "I already uploaded them", quoted_id="wamid.OUT", name="Maria")
    [record] = store.inbound_after(0)
    event = event_of(record)
    assert event.data == {
        "id": "in",
        "from": "34600111222",
        "name": "Maria",
        "text": "I already uploaded them",
        "type": "chat",
        "time": "2026-05-28T20:26:40Z",
        "channel": "whatsapp",
        "keyword": None,
        "reply_to": {
            "id": sent,
            "rule": "loan-docs",
            "dedupe_key": "case-9",
            "event": {"phone": "34600111222", "first_name": "maria"},
        },
    }
    assert event.trigger == {"kind": "inbound", "source": "whatsapp", "message": record.id}


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        pytest.param({}, "trigger.inbound.channel: is required", id="no-channel"),
        pytest.param({"channel": "w", "every": "0s"}, "must be more than 0s", id="every"),
        pytest.param({"channel": "w", "nope": 1}, "unknown key", id="unknown"),
    ],
)
def test_config_problems(config: dict[str, object], problem: str, store: Store) -> None:
    assert InboundTrigger.check(config, Path("."))
    with pytest.raises(ConfigError, match=problem):
        InboundTrigger(config, TriggerContext(store, FakeClock(), "."))
    assert InboundTrigger.source_key({"channel": "w"}) == "inbound:w"
