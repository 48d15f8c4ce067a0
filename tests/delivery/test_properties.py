"""Hypothesis drives random ack sequences (duplicates, any order, unknown ids, early acks,
time passing) through the real ledger and checks the two promises: a status never moves
backwards, and every notification ends in exactly one terminal state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.model import Ack, State
from nextstep.engine.rules.config import Config
from tests.delivery.kit import Ledger, context_for, person, write_config

S = State
RANK = {S.QUEUED: 0, S.SENDING: 0, S.SENT: 1, S.DELIVERED: 2, S.READ: 3, S.FAILED: 4, S.EXPIRED: 4}
FINAL = {S.DELIVERED, S.READ, S.FAILED, S.EXPIRED}  # the "docs" rule expects delivered
ERRORS = ["Message undeliverable", "User's number is part of an experiment", ""]
PEOPLE = 3

ack_op = st.tuples(
    st.just("ack"),
    st.integers(0, PEOPLE),  # PEOPLE is an id no notification has
    st.sampled_from(["sent", "delivered", "read", "failed", "viewed", "bogus"]),
    st.sampled_from(ERRORS),
)
time_op = st.tuples(st.just("wait"), st.integers(1, 400), st.just(""), st.just(""))
record_op = st.tuples(st.just("record"), st.integers(0, PEOPLE - 1), st.just(""), st.just(""))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return write_config(Path(tmp_path_factory.mktemp("props")))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(ack_op, time_op, record_op), max_size=40))
def test_statuses_never_move_backwards(
    config: Config, fresh_ledger: Callable[[], str], ops: list[tuple[str, int, str, str]]
) -> None:
    clock = FakeClock()
    ledger = Ledger(open_store(fresh_ledger()), config, clock, context_for(config))
    try:
        ids = [ledger.enqueue(person(i)) for i in range(PEOPLE)]
        recorded: set[int] = set()
        seen = {nid: S.QUEUED for nid in ids}
        for kind, who, status, error in ops:
            if kind == "ack":
                ledger.acks(Ack(f"wamid.{who}", status, error if status == "failed" else ""))
            elif kind == "wait":
                clock.advance(float(who))
                ledger.settle()
            elif ids[who] not in recorded:
                recorded.add(ids[who])
                ledger.record_sent(ids[who], f"wamid.{who}")
                ledger.settle(ids=[ids[who]])
            for nid in ids:
                now = ledger.state(nid)
                assert RANK[now] >= RANK[seen[nid]], (seen[nid], now)
                if RANK[seen[nid]] == 4:
                    assert now is seen[nid]
                seen[nid] = now
        for nid in ids:  # send whatever is left, then let every deadline pass
            if nid not in recorded:
                ledger.record_sent(nid, f"wamid.late{nid}")
        clock.advance(3600)
        ledger.settle()
        for nid in ids:
            row = ledger.get(nid)
            assert row.state in FINAL
            children = ledger.children(nid)
            if row.state in (S.FAILED, S.EXPIRED):
                assert [c.fallback_step for c in children] == [0]
            else:
                assert children == []
    finally:
        ledger.store.close()
