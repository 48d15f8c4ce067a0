"""The pure ack state machine: a table of cases and hypothesis over random ack sequences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.engine.delivery.statemachine import ACK_STATUSES, apply, is_terminal, reached
from nextstep.engine.model import DELIVERY_ORDER, State

S = State


@pytest.mark.parametrize(
    ("current", "ack", "expected"),
    [
        pytest.param(S.SENT, "delivered", (S.DELIVERED, True), id="sent-delivered"),
        pytest.param(S.SENT, "read", (S.READ, True), id="read-skips-delivered"),
        pytest.param(S.DELIVERED, "read", (S.READ, True), id="delivered-read"),
        pytest.param(S.READ, "delivered", (S.READ, False), id="late-delivered"),
        pytest.param(S.DELIVERED, "delivered", (S.DELIVERED, False), id="duplicate"),
        pytest.param(S.SENT, "sent", (S.SENT, False), id="sent-ack"),
        pytest.param(S.SENT, "failed", (S.FAILED, True), id="failed"),
        pytest.param(S.FAILED, "delivered", (S.FAILED, False), id="delivered-after-failed"),
        pytest.param(S.DELIVERED, "failed", (S.DELIVERED, False), id="failed-after-delivered"),
        pytest.param(S.SENT, "viewed", (S.READ, True), id="legacy-viewed"),
        pytest.param(S.SENT, "played", (S.READ, True), id="voice-played"),
        pytest.param(S.SENT, " DELIVERED ", (S.DELIVERED, True), id="case-and-space"),
        pytest.param(S.SENT, "pending", (S.SENT, False), id="unknown-status"),
        pytest.param(S.EXPIRED, "read", (S.EXPIRED, False), id="expired-stays"),
        pytest.param(S.QUEUED, "delivered", (S.QUEUED, False), id="open-ignores"),
        pytest.param(S.SUPERSEDED, "failed", (S.SUPERSEDED, False), id="superseded"),
    ],
)
def test_apply(current: State, ack: str, expected: tuple[State, bool]) -> None:
    assert apply(current, ack) == expected


@pytest.mark.parametrize(
    ("state", "expect", "ok"),
    [
        (S.SENT, "sent", True),
        (S.SENT, "delivered", False),
        (S.READ, "delivered", True),
        (S.DELIVERED, "read", False),
        (S.FAILED, "sent", False),
        (S.QUEUED, "sent", False),
    ],
)
def test_reached(state: State, expect: str, ok: bool) -> None:
    assert reached(state, expect) is ok


def test_terminal_states() -> None:
    assert {s for s in State if is_terminal(s)} == {
        S.FAILED,
        S.EXPIRED,
        S.SKIPPED,
        S.IN_DOUBT,
        S.SUPERSEDED,
        S.CANCELLED,
    }


def _rank(state: State) -> int:
    return 10 if state is S.FAILED else DELIVERY_ORDER[state]


@given(st.lists(st.sampled_from(sorted(ACK_STATUSES | {"bogus"})), max_size=30))
def test_random_sequences_never_move_backwards(acks: list[str]) -> None:
    state = S.SENT
    for ack in acks:
        new, changed = apply(state, ack)
        assert changed == (new is not state)
        assert _rank(new) >= _rank(state)
        if state is S.FAILED:
            assert new is S.FAILED
        state = new
    assert state is _oracle(acks)


def _oracle(acks: list[str]) -> State:
    """failed wins if it comes before any delivery evidence; else the strongest delivery ack."""
    delivery = {"delivered": S.DELIVERED, "read": S.READ, "viewed": S.READ, "played": S.READ}
    best = S.SENT
    for ack in acks:
        if ack == "failed" and best is S.SENT:
            return S.FAILED
        if ack in delivery and DELIVERY_ORDER[delivery[ack]] > DELIVERY_ORDER[best]:
            best = delivery[ack]
    return best
