"""Suppression holds under concurrency, on every backend: enqueuers, a dispatcher putting
retries back in the queue and an operator adding opt-outs run at once, each through its own
store (as separate workers would); afterwards no queued notification is one an opt-out stops,
and every notification skipped as opted out has the opt-out that stopped it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import OPTED_OUT, AttemptResult, OptOut, Store
from nextstep.engine.model import ALL_CHANNELS, State
from tests.support.notifications import T0, new_notification

PHONES = [f"3460000000{i}" for i in range(4)]
CHANNELS = ["whatsapp", "sms"]
EXEMPT = "crm-task"  # the rule whose notifications no opt-out stops

item = st.tuples(st.integers(0, len(PHONES) - 1), st.sampled_from([*CHANNELS, "exempt"]))
batches = st.lists(st.lists(item, min_size=1, max_size=6), min_size=1, max_size=8)
optouts = st.lists(
    st.tuples(st.integers(0, len(PHONES) - 1), st.sampled_from([ALL_CHANNELS, *CHANNELS])),
    min_size=1,
    max_size=6,
)


def _enqueue(store: Store, plan: list[list[tuple[int, str]]]) -> None:
    for batch in plan:
        store.enqueue(
            [
                new_notification(PHONES[who], rule_id=EXEMPT, channel="crm", optout=())
                if channel == "exempt"
                else new_notification(PHONES[who], channel=channel)
                for who, channel in batch
            ]
        )


def _opt_out(store: Store, plan: list[tuple[int, str]]) -> None:
    for i, (who, channel) in enumerate(plan):
        store.add_optouts([OptOut(PHONES[who], channel, T0 + i, "cli")])


def _retry(store: Store, rounds: int) -> None:
    """Lease what is due and put it back as a retry, as a dispatcher meeting errors would."""
    for _ in range(rounds):
        leased = store.lease_due(T0, 5)
        store.record_attempts(
            [
                AttemptResult(n.id, T0, State.QUEUED, {"kind": "transient"}, next_attempt_at=T0)
                for n in leased
            ]
        )


def _run_together(*jobs: Callable[[], None]) -> None:
    start = threading.Barrier(len(jobs))
    failures: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        start.wait()
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures


@pytest.mark.timeout(600)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=batches, second=batches, stops=optouts, rounds=st.integers(1, 6))
def test_suppression_holds_under_concurrent_enqueue(
    fresh_ledger: Callable[[], str],
    first: list[list[tuple[int, str]]],
    second: list[list[tuple[int, str]]],
    stops: list[tuple[int, str]],
    rounds: int,
) -> None:
    url = fresh_ledger()
    stores = [open_store(url) for _ in range(4)]
    try:
        _run_together(
            lambda: _enqueue(stores[0], first),
            lambda: _enqueue(stores[1], second),
            lambda: _opt_out(stores[2], stops),
            lambda: _retry(stores[3], rounds),
        )
        kept = {(o.recipient, o.channel) for o in stores[0].optouts()}
        rows = [n for state in State for n in stores[0].list(state=state, limit=10_000)]
        assert len(rows) == sum(len(b) for b in first + second)
        for n in rows:
            stopped = n.rule_id != EXEMPT and bool(
                kept & {(n.recipient, ALL_CHANNELS), (n.recipient, n.channel)}
            )
            if n.state is State.SKIPPED:
                assert n.reason == OPTED_OUT and stopped, n
            else:
                assert n.state is State.QUEUED and not stopped, n
    finally:
        for store in stores:
            store.close()
