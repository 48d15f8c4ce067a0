"""Acks and policies against a real ledger of each backend (no network): states, history,
fallbacks."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.delivery.timers import TimerSettings, run_timers
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Ack, State
from tests.delivery.kit import Ledger, person
from tests.support.waiting import until

S = State
NOT_ON_WHATSAPP = "Message undeliverable: not a WhatsApp user"


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock, ledger_url: str) -> Iterator[Ledger]:
    kit = Ledger.open(tmp_path, clock, ledger_url)
    yield kit
    kit.store.close()


def test_delivered_then_read(ledger: Ledger) -> None:
    nid = ledger.sent(person(), "wamid.1")
    report = ledger.acks(Ack("wamid.1", "sent"), Ack("wamid.1", "delivered"))
    assert (report.matched, report.moved, report.kept) == (2, 1, 0)
    assert ledger.state(nid) is S.DELIVERED
    ledger.acks(Ack("wamid.1", "read"))
    assert ledger.state(nid) is S.READ
    assert ledger.history_kinds(nid) == ["created", "attempt", "ack", "ack", "ack"]


def test_duplicates_and_out_of_order(ledger: Ledger) -> None:
    nid = ledger.sent(person(), "wamid.1")
    ledger.acks(Ack("wamid.1", "read"), Ack("wamid.1", "delivered"), Ack("wamid.1", "read"))
    ledger.acks(Ack("wamid.1", "sent"), Ack("wamid.1", "failed", NOT_ON_WHATSAPP))
    assert ledger.state(nid) is S.READ
    acks = [h.detail for h in ledger.store.history(nid) if h.kind == "ack"]
    assert [(a["status"], a["applied"]) for a in acks] == [
        ("read", True),
        ("delivered", False),
        ("read", False),
        ("sent", False),
        ("failed", False),
    ]
    assert ledger.children(nid) == []


def test_failed_ack_creates_the_fallback_template(ledger: Ledger) -> None:
    nid = ledger.sent(person(first_name="ana"), "wamid.1")
    ledger.acks(Ack("wamid.1", "failed", NOT_ON_WHATSAPP))
    parent = ledger.get(nid)
    assert parent.state is S.FAILED
    assert parent.failure_class == "recipient"
    [child] = ledger.children(nid)
    assert (child.fallback_step, child.state, child.channel) == (0, S.QUEUED, "whatsapp")
    assert child.fields["template"] == "next_step_short"
    assert child.fields["params"] == ["ana", "failed"]
    assert (child.expect, child.within) == ("delivered", 900.0)
    assert ledger.history_kinds(nid)[-2:] == ["state", "fallback"]
    # a late delivered does not revive it, and settling again creates nothing more
    ledger.acks(Ack("wamid.1", "delivered"))
    ledger.settle()
    assert ledger.state(nid) is S.FAILED
    assert len(ledger.children(nid)) == 1


def test_transient_failed_ack_retries_then_gives_up(ledger: Ledger) -> None:
    nid = ledger.sent(person(), "wamid.1")
    ledger.acks(Ack("wamid.1", "failed", "Rate limit hit", 130429))
    row = ledger.get(nid)
    assert (row.state, row.failure_class) == (S.QUEUED, "transient")
    assert row.next_attempt_at is not None
    assert 22.5 <= row.next_attempt_at - ledger.clock.now() <= 30.0
    assert ledger.children(nid) == []
    ledger.clock.advance(30)
    ledger.record_sent(nid, "wamid.2")  # the second and last attempt
    ledger.acks(Ack("wamid.2", "failed", "Rate limit hit", 130429))
    row = ledger.get(nid)
    assert (row.state, row.attempts) == (S.FAILED, 2)
    [child] = ledger.children(nid)
    assert child.fallback_step == 0


def test_ack_before_the_send_is_recorded(ledger: Ledger) -> None:
    nid = ledger.enqueue(person())
    report = ledger.acks(Ack("wamid.early", "delivered"))
    assert (report.matched, report.kept) == (0, 1)
    assert ledger.pending_acks() == 1
    ledger.record_sent(nid, "wamid.early")
    assert ledger.state(nid) is S.SENT
    assert ledger.settle(ids=[nid]).acks == 1
    assert ledger.state(nid) is S.DELIVERED
    assert ledger.pending_acks() == 0
    late = [h.detail for h in ledger.store.history(nid) if h.kind == "ack"]
    assert late == [{"status": "delivered", "source": "webhook", "applied": True, "late": True}]


def test_a_kept_failed_ack_applies_with_the_class_it_arrived_with(ledger: Ledger) -> None:
    nid = ledger.enqueue(person())
    ledger.acks(Ack("wamid.early", "failed", "Rate limit hit", 130429))  # transient, kept
    assert ledger.pending_acks() == 1
    ledger.record_sent(nid, "wamid.early")
    assert ledger.settle(ids=[nid]).acks == 1
    row = ledger.get(nid)
    assert (row.state, row.failure_class) == (S.QUEUED, "transient")


def test_kept_ack_applied_by_the_policy_loop(ledger: Ledger) -> None:
    nid = ledger.enqueue(person())
    ledger.acks(Ack("wamid.early", "read"), Ack("wamid.other-system", "read"))
    ledger.record_sent(nid, "wamid.early")
    assert ledger.settle().acks == 1
    assert ledger.state(nid) is S.READ
    assert ledger.pending_acks() == 1  # kept, never dropped


def test_expiry_walks_the_chain_without_looping(ledger: Ledger) -> None:
    nid = ledger.sent(person(), "wamid.1")
    ledger.acks(Ack("wamid.1", "sent"))
    ledger.clock.advance(899)
    assert ledger.settle().expired == 0
    ledger.clock.advance(2)
    assert ledger.settle().expired == 1
    parent = ledger.get(nid)
    assert parent.state is S.EXPIRED
    [first] = ledger.children(nid)
    assert first.fallback_step == 0
    assert first.fields["params"] == ["maria", "expired"]
    # the fallback template fails too: the chain moves on to the next step that covers
    # "failed" (the CRM webhook), never back to step 0
    ledger.record_sent(first.id, "wamid.fb")
    ledger.acks(Ack("wamid.fb", "failed", NOT_ON_WHATSAPP))
    [second] = ledger.children(first.id)
    assert (second.fallback_step, second.channel) == (1, "crm")
    assert second.fields["body"] == {
        "case": "1001",
        "reason": f"failed ack: {NOT_ON_WHATSAPP}",
        "class": "recipient",
    }
    assert (second.expect, second.within) == ("sent", None)
    # the CRM call fails for good: step 2 covers only "expired", so the chain ends
    ledger.record(second.id, S.FAILED, "recipient", reason="HTTP 410", failure_class="recipient")
    assert ledger.settle(ids=[second.id]).settled == 1
    assert ledger.children(second.id) == []
    assert ledger.settle().settled == 0


def test_dispatcher_failure_is_settled_once(ledger: Ledger) -> None:
    nid = ledger.enqueue(person())
    ledger.record(nid, S.FAILED, "template", code=132001, failure_class="template")
    assert ledger.settle(ids=[nid]).settled == 1
    assert ledger.settle().settled == 0
    [child] = ledger.children(nid)
    assert child.fallback_step == 0
    with ledger.store.transaction() as tx:  # the code the fallback's `failure.code` shows
        assert tx.last_code(nid) == 132001


def test_expiry_by_valid_for_then_mail_fallback_rendered(ledger: Ledger) -> None:
    # 2026-05-28 is a Thursday; 22:26 in Madrid: the window opens on Friday at 09:00
    nid = ledger.enqueue(person(), rule="windowed")
    row = ledger.get(nid)
    madrid = ZoneInfo("Europe/Madrid")
    assert row.next_attempt_at is not None
    opens = datetime.datetime.fromtimestamp(row.next_attempt_at, madrid)
    assert (opens.weekday(), opens.hour, opens.minute) == (4, 9, 0)
    ledger.clock.advance(3 * 86400 + 1)
    assert ledger.settle().expired == 1
    assert ledger.state(nid) is S.EXPIRED
    assert ledger.children(nid) == []  # this rule has no fallback


def test_retry_in_quiet_hours_waits_for_the_window(ledger: Ledger) -> None:
    madrid = ZoneInfo("Europe/Madrid")
    # Friday 17:59:30 in Madrid: sent, then a transient failure whose retry would fall at
    # 18:00:15 or so, after the window closed; it must wait for Monday 09:00.
    friday = datetime.datetime(2026, 5, 29, 17, 59, 30, tzinfo=madrid).timestamp()
    ledger.clock.advance(friday - ledger.clock.now())
    nid = ledger.enqueue(person(), rule="windowed")
    ledger.record_sent(nid, "wamid.w")
    ledger.acks(Ack("wamid.w", "failed", "Something went wrong", 131000))
    row = ledger.get(nid)
    assert row.state is S.QUEUED and row.next_attempt_at is not None
    monday = datetime.datetime.fromtimestamp(row.next_attempt_at, madrid)
    assert (monday.weekday(), monday.hour, monday.minute) == (0, 9, 0)
    # the same for a retry the dispatcher decided (its hook settles with the ids)
    other = ledger.enqueue(person(2), rule="windowed")
    retry_at = ledger.clock.now() + 60
    ledger.record(other, S.QUEUED, "transient", next_attempt_at=retry_at, failure_class="transient")
    ledger.settle(ids=[other])
    due = ledger.get(other).next_attempt_at
    assert due is not None
    assert datetime.datetime.fromtimestamp(due, madrid).weekday() == 0
    # and without the hook, the policy loop moves a retry due within its look-ahead
    third = ledger.enqueue(person(3), rule="windowed")
    soon = ledger.clock.now() + 40
    ledger.record(third, S.QUEUED, "transient", next_attempt_at=soon, failure_class="transient")
    ledger.settle()
    assert ledger.get(third).next_attempt_at == soon  # not due soon: left for later
    ledger.clock.advance(37)
    ledger.settle()
    due = ledger.get(third).next_attempt_at
    assert due is not None
    assert datetime.datetime.fromtimestamp(due, madrid).weekday() == 0


def test_supersede_cancels_older_queued_only(ledger: Ledger) -> None:
    first = ledger.sent(person(stage="docs"), "wamid.s1", rule="latest")
    second = ledger.enqueue(person(stage="review"), rule="latest")
    third = ledger.enqueue(person(stage="approved"), rule="latest")
    assert ledger.state(first) is S.SENT  # already sent: not taken back
    assert ledger.state(second) is S.SUPERSEDED
    assert ledger.get(second).reason == f"superseded by #{third}"
    assert ledger.state(third) is S.QUEUED


def test_fallback_renders_with_the_rule_version_that_made_the_notification(
    ledger: Ledger,
) -> None:
    rule = ledger.config.rules["docs"]
    old = copy.deepcopy(dict(rule.definition))
    old["policy"]["fallback"][0]["send"]["template"] = "next_step_v0"
    ledger.store.save_rule_version("docs", "0ld0ld0ld0ld", old)
    nid = ledger.enqueue(person(), rule_version="0ld0ld0ld0ld")
    ledger.record_sent(nid, "wamid.1")
    ledger.acks(Ack("wamid.1", "failed", NOT_ON_WHATSAPP))
    [child] = ledger.children(nid)
    assert child.fields["template"] == "next_step_v0"
    assert child.rule_version == "0ld0ld0ld0ld"


async def test_policy_loop_runs_on_the_clock(ledger: Ledger) -> None:
    nid = ledger.sent(person(), "wamid.1")
    runner = LedgerRunner(ledger.store)
    loop = asyncio.create_task(run_timers(runner, ledger.clock, ledger.ctx, TimerSettings(every=5)))
    try:
        await until(lambda: ledger.clock.sleepers > 0)
        assert ledger.state(nid) is S.SENT
        ledger.clock.advance(901)
        await until(lambda: ledger.state(nid) is S.EXPIRED)
        await until(lambda: len(ledger.children(nid)) == 1)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        runner.close(close_store=False)
