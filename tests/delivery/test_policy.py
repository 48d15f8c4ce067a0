"""Pure policy decisions: expiry, which fallback step applies, what a fallback sees."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.engine.delivery.policy import (
    Failure,
    expiry_reason,
    fallback_expectation,
    fallback_step,
    retries,
    window_time,
)
from nextstep.engine.model import State
from nextstep.engine.rules.rule import RetryPolicy, SendWindow

S = State


@dataclass(frozen=True)
class Step:
    on: frozenset[str]


def steps(*ons: str) -> list[Step]:
    return [Step(frozenset(on.split(","))) for on in ons]


@pytest.mark.parametrize(
    ("state", "expect", "deadline", "valid_until", "now", "expired"),
    [
        pytest.param(S.QUEUED, "sent", None, 50.0, 100.0, True, id="queued-past-valid-for"),
        pytest.param(S.QUEUED, "sent", None, 150.0, 100.0, False, id="queued-in-time"),
        pytest.param(S.SENDING, "sent", None, 50.0, 100.0, False, id="sending-left-alone"),
        pytest.param(S.SENT, "delivered", 90.0, None, 100.0, True, id="sent-past-within"),
        pytest.param(S.SENT, "delivered", 110.0, None, 100.0, False, id="sent-before-within"),
        pytest.param(S.DELIVERED, "delivered", 90.0, None, 100.0, False, id="reached"),
        pytest.param(S.DELIVERED, "read", 90.0, None, 100.0, True, id="delivered-not-read"),
        pytest.param(S.FAILED, "read", 90.0, 10.0, 100.0, False, id="terminal"),
        pytest.param(S.SENT, "delivered", None, None, 100.0, False, id="no-within"),
    ],
)
def test_expiry(
    state: State,
    expect: str,
    deadline: float | None,
    valid_until: float | None,
    now: float,
    expired: bool,
) -> None:
    reason = expiry_reason(
        state, expect=expect, deadline=deadline, valid_until=valid_until, now=now
    )
    assert (reason is not None) is expired


CHAIN = steps("failed,expired", "failed", "recipient", "expired")


@pytest.mark.parametrize(
    ("failure", "after", "step"),
    [
        pytest.param(Failure("failed", failure_class="template"), None, 0, id="first-match"),
        pytest.param(Failure("expired"), None, 0, id="expired-first"),
        pytest.param(Failure("failed", failure_class="template"), 0, 1, id="next-step"),
        pytest.param(Failure("failed", failure_class="recipient"), 1, 2, id="by-class"),
        pytest.param(Failure("failed", failure_class="template"), 1, None, id="no-class"),
        pytest.param(Failure("expired"), 0, 3, id="skip-to-expired"),
        pytest.param(Failure("expired"), 3, None, id="end-of-chain"),
    ],
)
def test_fallback_step(failure: Failure, after: int | None, step: int | None) -> None:
    assert fallback_step(CHAIN, failure, after=after) == step


def test_class_never_matches_expiry() -> None:
    assert fallback_step(steps("recipient"), Failure("expired", failure_class="recipient")) is None


@given(
    st.lists(
        st.sets(st.sampled_from(["failed", "expired", "recipient", "transient"]), min_size=1),
        max_size=6,
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["failed", "expired"]),
            st.sampled_from(["recipient", "transient", "template"]),
        ),
        max_size=10,
    ),
)
def test_chain_never_loops(ons: list[set[str]], failures: list[tuple[str, str]]) -> None:
    chain = [Step(frozenset(on)) for on in ons]
    after: int | None = None
    for status, cls in failures:
        nxt = fallback_step(chain, Failure(status, failure_class=cls), after=after)
        if nxt is None:
            break
        assert after is None or nxt > after
        after = nxt


def test_failure_scope() -> None:
    failure = Failure("failed", "not a WhatsApp user", 131026, 2, "recipient")
    assert failure.scope() == {
        "status": "failed",
        "reason": "not a WhatsApp user",
        "code": 131026,
        "attempts": 2,
        "class": "recipient",
    }


def test_fallback_expectation() -> None:
    assert fallback_expectation(True, expect="read", within=60.0) == ("read", 60.0)
    assert fallback_expectation(False, expect="read", within=60.0) == ("sent", None)


@pytest.mark.parametrize(
    ("failure_class", "attempts", "expected"),
    [
        pytest.param("transient", 1, True, id="transient-with-attempts-left"),
        pytest.param("transient", 4, False, id="no-attempts-left"),
        pytest.param("recipient", 1, False, id="not-on-whatsapp-never"),
        pytest.param("template", 1, False, id="template"),
    ],
)
def test_retries(failure_class: str, attempts: int, expected: bool) -> None:
    assert retries(failure_class, attempts, RetryPolicy(attempts=4)) is expected


def test_window_time() -> None:
    window = SendWindow(frozenset(range(5)), datetime.time(9), datetime.time(18), "UTC")
    friday_evening = datetime.datetime(2026, 5, 29, 19, tzinfo=datetime.UTC).timestamp()
    monday = datetime.datetime(2026, 6, 1, 9, tzinfo=datetime.UTC).timestamp()
    assert window_time(window, "UTC", friday_evening) == monday
    assert window_time(None, "UTC", friday_evening) == friday_evening
    with pytest.raises(ValueError, match="time zone"):
        window_time(window, "Mars/Olympus", friday_evening)
