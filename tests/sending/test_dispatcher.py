"""The dispatcher over a scripted fake channel: retries, Retry-After, permanent failures, the
circuit, in-doubt, duplicates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Outcome, OutcomeKind, State
from nextstep.engine.rules.rule import RetryPolicy
from nextstep.engine.sending.circuit import Circuit
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.sending.helpers import (
    ACCOUNT,
    IN_DOUBT,
    TRANSIENT,
    dispatcher,
    enqueue,
    row,
)
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification


@pytest.fixture
async def runner() -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store("sqlite:///:memory:"))
    yield r
    r.close()


@pytest.fixture
def fake(clock: FakeClock) -> FakeChannel:
    return FakeChannel(clock)


async def test_transient_failures_are_retried_and_accepted_exactly_once(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    fake.script("1", [TRANSIENT, TRANSIENT])
    (nid,) = await enqueue(runner, new_notification("1"))
    d = dispatcher(runner, clock, fake, RetryPolicy(attempts=4, backoff=30, max_backoff=900))
    start = clock.now()

    await d.run_until_idle()
    first = await row(runner, nid)
    assert (first.state, first.attempts, first.failure_class) == (State.QUEUED, 1, "transient")
    assert first.next_attempt_at is not None
    assert start + 22.5 <= first.next_attempt_at <= start + 30

    await d.run_until_idle()  # not due yet: nothing happens
    assert len(fake.sends) == 1
    for _ in range(4):
        clock.advance(120)
        await d.run_until_idle()

    done = await row(runner, nid)
    assert [s.outcome.kind for s in fake.sends] == [
        OutcomeKind.TRANSIENT,
        OutcomeKind.TRANSIENT,
        OutcomeKind.ACCEPTED,
    ]
    assert (done.state, done.attempts) == (State.SENT, 3)
    assert done.provider_id == fake.sends[-1].outcome.provider_id
    history = await runner.call(runner.store.history, nid)
    attempts = [h.detail for h in history if h.kind == "attempt"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert attempts[0]["outcome"]["http_status"] == 503


async def test_retries_stop_at_the_policy_attempts(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    fake.script("1", [TRANSIENT] * 5)
    (nid,) = await enqueue(runner, new_notification("1"))
    d = dispatcher(runner, clock, fake, RetryPolicy(attempts=2, backoff=1, max_backoff=1))
    for _ in range(4):
        await d.run_until_idle()
        clock.advance(10)
    failed = await row(runner, nid)
    assert len(fake.sends) == 2
    assert failed.state is State.FAILED
    assert failed.reason == "gave up after 2 attempts: HTTP 503"


async def test_a_429_waits_at_least_retry_after(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    fake.script(
        "1",
        [Outcome(OutcomeKind.TRANSIENT, "HTTP 429", http_status=429, retry_after=120, pause=120)],
    )
    (nid,) = await enqueue(runner, new_notification("1"))
    d = dispatcher(runner, clock, fake, RetryPolicy(backoff=1))
    start = clock.now()
    await d.run_until_idle()
    waiting = await row(runner, nid)
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at >= start + 120
    assert d.status()["whatsapp"].paused_until == start + 120

    clock.advance(119)
    await d.run_until_idle()
    assert len(fake.sends) == 1
    clock.advance(1)
    await d.run_until_idle()
    assert [s.at - start for s in fake.sends] == [0, 120]
    assert (await row(runner, nid)).state is State.SENT


@pytest.mark.parametrize(
    ("outcome", "failure_class"),
    [
        pytest.param(
            Outcome(OutcomeKind.RECIPIENT, "131026 undeliverable", code=131026),
            "recipient",
            id="recipient",
        ),
        pytest.param(
            Outcome(OutcomeKind.TEMPLATE, "132001 template does not exist", code=132001),
            "template",
            id="template",
        ),
    ],
)
async def test_recipient_and_template_failures_are_not_retried(
    runner: LedgerRunner,
    clock: FakeClock,
    fake: FakeChannel,
    outcome: Outcome,
    failure_class: str,
) -> None:
    fake.script("1", [outcome])
    (nid,) = await enqueue(runner, new_notification("1"))
    d = dispatcher(runner, clock, fake, RetryPolicy(attempts=5, backoff=1))
    for _ in range(3):
        await d.run_until_idle()
        clock.advance(3600)
    failed = await row(runner, nid)
    assert len(fake.sends) == 1
    assert (failed.state, failed.failure_class, failed.attempts) == (
        State.FAILED,
        failure_class,
        1,
    )
    assert failed.reason == outcome.reason


async def test_an_account_failure_stops_the_channel_without_losing_anything(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    fake.script("1", [ACCOUNT])
    ids = await enqueue(runner, *(new_notification(str(i)) for i in range(1, 4)))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(max_in_flight=1))

    await d.run_until_idle()
    status = d.status()["whatsapp"]
    assert status.circuit.state == "open"
    assert status.circuit.reason == "HTTP 401: wrong token"
    assert len(fake.sends) == 1
    rows = [await row(runner, nid) for nid in ids]
    assert [r.state for r in rows] == [State.QUEUED] * 3
    assert rows[0].attempts == 0  # an account failure is not the notification's fault

    clock.advance(5)
    await d.run_until_idle()  # the probe fails: still stopped
    assert (fake.probes, len(fake.sends)) == (1, 1)
    assert d.status()["whatsapp"].circuit.state == "open"

    fake.probe_ok = True
    clock.advance(600)
    await d.run_until_idle()
    assert d.status()["whatsapp"].circuit.state == "closed"
    assert [s.message.to for s in fake.sends] == ["1", "1", "2", "3"]
    assert [(await row(runner, nid)).state for nid in ids] == [State.SENT] * 3


async def test_a_read_timeout_stays_in_doubt_and_is_not_sent_again(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    fake.script("1", [IN_DOUBT])
    (nid,) = await enqueue(runner, new_notification("1"))
    d = dispatcher(runner, clock, fake, RetryPolicy(attempts=5, backoff=1))
    for _ in range(3):
        await d.run_until_idle()
        clock.advance(3600)
    doubt = await row(runner, nid)
    assert len(fake.sends) == 1
    assert (doubt.state, doubt.reason) == (State.IN_DOUBT, "read timeout")


async def test_in_doubt_resend_when_the_rule_allows_it(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    fake.script("1", [IN_DOUBT])
    (nid,) = await enqueue(runner, new_notification("1"))
    d = dispatcher(runner, clock, fake, RetryPolicy(backoff=1, in_doubt="resend"))
    await d.run_until_idle()
    clock.advance(10)
    await d.run_until_idle()
    assert len(fake.sends) == 2
    assert (await row(runner, nid)).state is State.SENT


async def test_duplicates_are_skipped_and_never_sent(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    first, second = await enqueue(
        runner,
        new_notification("1", dedupe_key="12345:docs"),
        new_notification("1", dedupe_key="12345:docs"),
    )
    (third,) = await enqueue(runner, new_notification("1", dedupe_key="12345:docs"))
    d = dispatcher(runner, clock, fake)
    await d.run_until_idle()
    clock.advance(60)
    await d.run_until_idle()
    assert len(fake.sends) == 1
    assert (await row(runner, first)).state is State.SENT
    for dup in (second, third):
        skipped = await row(runner, dup)
        assert (skipped.state, skipped.reason) == (State.SKIPPED, f"duplicate of #{first}")


async def test_a_channel_that_raises_leaves_the_message_in_doubt(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    class Broken(FakeChannel):
        async def send(self, message: object) -> Outcome:
            raise RuntimeError("bug")

    (nid,) = await enqueue(runner, new_notification("1"))
    await dispatcher(runner, clock, Broken(clock)).run_until_idle()
    doubt = await row(runner, nid)
    assert doubt.state is State.IN_DOUBT
    assert "RuntimeError" in doubt.reason


async def test_a_missing_policy_records_the_outcome_without_retrying(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    from nextstep.engine.sending.dispatcher import Dispatcher

    def no_policy(_n: object) -> RetryPolicy:
        raise KeyError("rule gone")

    fake.script("1", [TRANSIENT])
    (nid,) = await enqueue(runner, new_notification("1"))
    await Dispatcher(runner, {"whatsapp": fake}, no_policy, clock).run_until_idle()
    assert (await row(runner, nid)).state is State.FAILED


async def test_a_run_of_unanswered_requests_stops_the_channel(
    runner: LedgerRunner, clock: FakeClock, fake: FakeChannel
) -> None:
    # Issue 15.9: one request without an answer is one message in doubt; three in a row with
    # no answer between mean the channel is down, so the rest wait instead of joining them.
    silent = Outcome(OutcomeKind.IN_DOUBT, "no answer after sending: ReadTimeout")
    for recipient in ("1", "2", "3"):
        fake.script(recipient, [silent])
    ids = await enqueue(runner, *(new_notification(str(i)) for i in range(1, 7)))
    d = dispatcher(runner, clock, fake, limits=ChannelLimits(max_in_flight=1))
    await d.run_until_idle()
    rows = [await row(runner, nid) for nid in ids]
    assert [r.state for r in rows] == [State.IN_DOUBT] * 3 + [State.QUEUED] * 3
    assert [r.attempts for r in rows[3:]] == [0, 0, 0]
    circuit = d.status()["whatsapp"].circuit
    assert (circuit.state, circuit.cause) == ("open", "no_answer")

    fake.probe_ok = True
    clock.advance(600)
    await d.run_until_idle()
    assert [(await row(runner, nid)).state for nid in ids[3:]] == [State.SENT] * 3


def test_an_answer_between_two_timeouts_keeps_the_circuit_closed() -> None:
    circuit = Circuit()
    silent = Outcome(OutcomeKind.IN_DOUBT, "no answer")
    answered = Outcome(OutcomeKind.TRANSIENT, "HTTP 503", http_status=503)
    verdicts = [circuit.verdict(o) for o in (silent, silent, answered, silent, silent)]
    assert verdicts == [None] * 5
    assert circuit.verdict(silent) == ("no_answer", "3 requests in a row got no answer: no answer")
    assert circuit.verdict(Outcome(OutcomeKind.TRANSIENT, "refused", unreachable=True)) == (
        "unreachable",
        "unreachable: refused",
    )
