"""Retry delays: monotone, capped, jittered; the circuit's probe schedule."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from nextstep.engine.backoff import JITTER, compute_backoff, raw_backoff
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.circuit import Circuit


class _Fixed:
    """A random source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


_policies = st.builds(
    lambda backoff, extra: RetryPolicy(backoff=backoff, max_backoff=backoff + extra),
    st.floats(min_value=0, max_value=3600),
    st.floats(min_value=0, max_value=86400),
)


@given(policy=_policies, attempt=st.integers(min_value=1, max_value=2000), u=st.floats(0, 0.999))
def test_backoff_is_monotone_capped_and_jittered(
    policy: RetryPolicy, attempt: int, u: float
) -> None:
    rng = _Fixed(u)
    now, after = compute_backoff(attempt, policy, rng), compute_backoff(attempt + 1, policy, rng)
    assert 0 <= now <= after <= policy.max_backoff
    raw = raw_backoff(attempt, policy)
    assert raw * (1 - JITTER) <= now <= raw


@given(policy=_policies, attempt=st.integers(min_value=1, max_value=60))
def test_backoff_never_shrinks_before_the_cap(policy: RetryPolicy, attempt: int) -> None:
    rng = random.Random(attempt)
    if raw_backoff(attempt + 1, policy) < policy.max_backoff:
        assert compute_backoff(attempt, policy, rng) <= compute_backoff(attempt + 1, policy, rng)


def test_backoff_doubles_from_the_first_retry() -> None:
    policy = RetryPolicy(backoff=30, max_backoff=900)
    assert [raw_backoff(a, policy) for a in range(0, 7)] == [0, 30, 60, 120, 240, 480, 900]


def test_circuit_probes_later_and_later_until_it_closes() -> None:
    circuit = Circuit(first_probe=5, max_probe=60)
    assert circuit.open("401", 100.0)
    assert not circuit.open("again", 101.0)  # already open: alert once
    assert not circuit.probe_due(104.0) and circuit.probe_due(105.0)
    waits = []
    now = 105.0
    for _ in range(5):
        circuit.probe_failed(now)
        next_at = circuit.status.next_probe_at
        assert next_at is not None
        waits.append(next_at - now)
        now = next_at
    assert waits == [10, 20, 40, 60, 60]
    assert circuit.status.reason == "401" and circuit.status.failed_probes == 5
    circuit.close()
    assert circuit.status.as_dict()["state"] == "closed" and not circuit.probe_due(now + 1e6)
