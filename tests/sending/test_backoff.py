"""The capped doubling curve; retry delays: monotone, capped, jittered; the circuit's probe
schedule."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from nextstep.adapters.triggers.db_poll import retry_delay
from nextstep.engine.backoff import JITTER, capped_doubling, compute_backoff, raw_backoff
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.runtime.supervisor import restart_delay
from nextstep.engine.sending.circuit import Circuit


class _Fixed:
    """A random source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@given(
    attempt=st.integers(min_value=-5, max_value=5000),
    first=st.floats(min_value=0, max_value=1e6),
    cap=st.floats(min_value=0, max_value=1e9),
)
def test_capped_doubling_is_monotone_and_never_above_the_cap(
    attempt: int, first: float, cap: float
) -> None:
    now, after = capped_doubling(attempt, first, cap), capped_doubling(attempt + 1, first, cap)
    assert 0 <= now <= after <= cap


def test_capped_doubling_starts_at_first_and_doubles() -> None:
    assert [capped_doubling(a, 0.5, 30) for a in range(0, 9)] == [0, 0.5, 1, 2, 4, 8, 16, 30, 30]
    assert capped_doubling(10**9, 1.0, 60) == 60
    assert capped_doubling(3, -1.0, 60) == 0 and capped_doubling(3, 1.0, -60) == 0


def test_every_curve_is_the_capped_doubling_one() -> None:
    for n in range(0, 40):
        policy = RetryPolicy(backoff=30, max_backoff=900)
        assert raw_backoff(n, policy) == capped_doubling(n, 30, 900)
        assert restart_delay(n, base=0.5, cap=30) == capped_doubling(n, 0.5, 30)
    for n in range(1, 40):
        assert retry_delay(n, 10) == capped_doubling(n, 10, 300)
        assert retry_delay(n, 0.2) == capped_doubling(n, 1, 300)
        assert retry_delay(n, 600) == 600


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
