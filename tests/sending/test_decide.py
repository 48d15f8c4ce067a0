"""The pure decision after one attempt, case by case."""

from __future__ import annotations

import pytest

from nextstep.engine.ledger.base import Notification
from nextstep.engine.model import Outcome, OutcomeKind, State
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.attempt import decide, outcome_doc

NOW = 1_000.0


class _Max:
    """A random source that always draws 0: the full backoff, no jitter taken off."""

    def random(self) -> float:
        return 0.0


def _notification(attempts: int = 0) -> Notification:
    return Notification(
        id=7,
        rule_id="r",
        rule_version="v",
        channel="whatsapp",
        recipient="34600111222",
        fields={},
        event={},
        state=State.SENDING,
        attempts=attempts,
        created_at=0.0,
        updated_at=0.0,
        next_attempt_at=0.0,
        dedupe_key=None,
        provider_id=None,
        expect="sent",
        within=None,
        deadline_at=None,
        valid_until=None,
        supersede_key=None,
        parent_id=None,
        fallback_step=None,
        reason="",
        failure_class=None,
        trigger={},
    )


POLICY = RetryPolicy(attempts=3, backoff=30, max_backoff=900)
T = OutcomeKind


@pytest.mark.parametrize(
    ("attempts", "outcome", "policy", "state", "next_at", "reason"),
    [
        pytest.param(
            0, Outcome(T.ACCEPTED, provider_id="w"), POLICY, State.SENT, None, "", id="ok"
        ),
        pytest.param(
            0, Outcome(T.TRANSIENT, "503"), POLICY, State.QUEUED, NOW + 30, "503", id="retry"
        ),
        pytest.param(
            1, Outcome(T.TRANSIENT, "503"), POLICY, State.QUEUED, NOW + 60, "503", id="retry2"
        ),
        pytest.param(
            2,
            Outcome(T.TRANSIENT, "503"),
            POLICY,
            State.FAILED,
            None,
            "gave up after 3 attempts: 503",
            id="last",
        ),
        pytest.param(
            0,
            Outcome(T.TRANSIENT, "429", retry_after=300),
            POLICY,
            State.QUEUED,
            NOW + 300,
            "429",
            id="retry-after-wins",
        ),
        pytest.param(
            0,
            Outcome(T.TRANSIENT, "429", retry_after=5),
            POLICY,
            State.QUEUED,
            NOW + 30,
            "429",
            id="backoff-wins",
        ),
        pytest.param(
            0, Outcome(T.RECIPIENT, "131026"), POLICY, State.FAILED, None, "131026", id="recipient"
        ),
        pytest.param(
            0, Outcome(T.TEMPLATE, "132001"), POLICY, State.FAILED, None, "132001", id="template"
        ),
        pytest.param(
            0,
            Outcome(T.RECIPIENT, "131026"),
            RetryPolicy(on=frozenset({"recipient"})),
            State.QUEUED,
            NOW + 30,
            "131026",
            id="recipient-if-the-rule-says",
        ),
        pytest.param(
            0, Outcome(T.IN_DOUBT, "timeout"), POLICY, State.IN_DOUBT, None, "timeout", id="doubt"
        ),
        pytest.param(
            0,
            Outcome(T.IN_DOUBT, "timeout"),
            RetryPolicy(in_doubt="resend"),
            State.QUEUED,
            NOW + 30,
            "timeout",
            id="doubt-resend",
        ),
        pytest.param(
            3,
            Outcome(T.IN_DOUBT, "timeout"),
            RetryPolicy(in_doubt="resend"),
            State.IN_DOUBT,
            None,
            "gave up after 4 attempts: timeout",
            id="doubt-resend-spent",
        ),
        pytest.param(
            9,
            Outcome(T.ACCOUNT, "401"),
            POLICY,
            State.QUEUED,
            NOW,
            "channel stopped: 401",
            id="account",
        ),
    ],
)
def test_decide(
    attempts: int,
    outcome: Outcome,
    policy: RetryPolicy,
    state: State,
    next_at: float | None,
    reason: str,
) -> None:
    result = decide(_notification(attempts), outcome, policy, NOW, _Max())
    assert (result.state, result.next_attempt_at, result.reason) == (state, next_at, reason)
    assert result.attempt == attempts + 1
    assert result.counts is (outcome.kind is not T.ACCOUNT)
    assert result.failure_class == (None if outcome.ok else outcome.kind.value)
    assert result.outcome == outcome_doc(outcome)


def test_the_outcome_kept_in_history_is_bounded() -> None:
    doc = outcome_doc(Outcome(T.TRANSIENT, "x", code=131000, http_status=500, answer="a" * 5000))
    assert doc == {
        "kind": "transient",
        "reason": "x",
        "code": 131000,
        "http_status": 500,
        "answer": "a" * 2000,
    }
