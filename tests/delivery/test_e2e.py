"""End to end on loopback: the sandbox posts acks to nextstep's webhook (uvicorn), the
dispatcher sends through the real channels, fallbacks reach a real HTTP server and a real SMTP
server. The engine's clock is injected; the sandbox's ack timers run in real time and tests
wait for them on the sandbox's own events."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nextstep.adapters.channels.onemsg.registration import register_webhook
from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger.base import AttemptResult
from nextstep.engine.model import Ack, Message, State
from tests.delivery.kit import person
from tests.delivery.world import World, world

S = State
EXPERIMENT = "User's number is part of an experiment"


@pytest.fixture
async def w(tmp_path: Path, clock: FakeClock, ledger_url: str) -> AsyncIterator[World]:
    async with world(tmp_path, clock, ledger_url) as running:
        yield running


def acks_of(w: World, nid: int) -> list[tuple[str, bool]]:
    """The acks in a notification's history, sorted: an ack that beat the send record is
    applied after the ones that came later, so arrival order is not history order."""
    lines = w.ledger.store.history(nid)
    return sorted((h.detail["status"], h.detail["applied"]) for h in lines if h.kind == "ack")


async def test_delivered_and_read(w: World) -> None:
    nid = w.ledger.enqueue(person(101), "main")
    await w.dispatch()
    await w.acks(3)
    assert w.ledger.state(nid) is S.READ
    assert acks_of(w, nid) == [("delivered", True), ("read", True), ("sent", False)]
    assert w.sent_templates() == [("next_step", "34600000101")]


async def test_duplicated_and_out_of_order_acks(w: World) -> None:
    nid = w.ledger.enqueue(person(8), "main")  # …0008: sent, sent, read, delivered, read
    await w.dispatch()
    await w.acks(5)
    assert w.ledger.state(nid) is S.READ
    # read may come before delivered: exactly one read moves the state, nothing moves it back
    assert acks_of(w, nid) in (
        [("delivered", False), ("read", False), ("read", True), ("sent", False), ("sent", False)],
        [("delivered", True), ("read", False), ("read", True), ("sent", False), ("sent", False)],
    )


async def test_failed_ack_triggers_the_fallback_template_then_email(w: World) -> None:
    nid = w.ledger.enqueue(person(6, first_name="ana"), "main")  # …0006: acks failed
    await w.dispatch()
    await w.acks(2)
    parent = w.ledger.get(nid)
    assert (parent.state, parent.failure_class) == (S.FAILED, "recipient")
    assert EXPERIMENT in parent.reason
    [child] = w.ledger.children(nid)
    assert (child.fallback_step, child.state) == (0, S.QUEUED)
    w.clock.advance(10)  # one message per recipient every 6 s
    await w.dispatch()
    assert w.sent_templates() == [("next_step", "34600000006"), ("next_step_short", "34600000006")]
    [short] = [r.body for r in w.sandbox.sends()][1:]
    params = short["params"][0]["parameters"]
    assert [p["text"] for p in params] == ["Ana", "call us (recipient)"]
    # the fallback fails the same way: the chain goes on to the e-mail step, never back
    await w.acks(4)
    assert w.ledger.state(child.id) is S.FAILED
    [mail] = w.ledger.children(child.id)
    assert (mail.fallback_step, mail.channel) == (2, "mail")
    await w.dispatch()
    assert w.ledger.state(mail.id) is S.SENT
    [email] = w.mailbox.messages
    assert email["To"] == "ops@example.com"
    assert email["Subject"] == "case 1006 unreachable"
    assert f"failed ack: {EXPERIMENT} after 1 attempts" in str(email.get_payload())


async def test_send_failure_falls_back_through_the_dispatcher_hook(w: World) -> None:
    nid = w.ledger.enqueue(person(1), "main")  # …0001: Meta 131026 at once, no ack
    await w.dispatcher.run_until_idle()  # no policy loop run: the hook does it
    parent = w.ledger.get(nid)
    assert (parent.state, parent.failure_class) == (S.FAILED, "recipient")
    [child] = w.ledger.children(nid)
    assert child.fallback_step == 0
    assert w.ledger.settle().settled == 0  # already settled, once


async def test_expired_notification_triggers_the_webhook_fallback(w: World) -> None:
    nid = w.ledger.enqueue(person(10), "main")  # …0010: only ever "sent"
    await w.dispatch()
    await w.acks(1)
    w.clock.advance(15 * 60 - 1)
    await w.dispatch()
    assert w.ledger.state(nid) is S.SENT
    w.clock.advance(2)
    await w.dispatch()  # expires, creates the CRM fallback, and sends it
    assert w.ledger.state(nid) is S.EXPIRED
    [crm] = w.ledger.children(nid)
    assert (crm.fallback_step, crm.channel) == (1, "crm")
    await w.dispatch()
    assert w.ledger.state(crm.id) is S.SENT
    [body] = w.crm.bodies
    assert body["case"] == "1010"
    assert body["status"] == "expired"
    assert body["reason"].startswith("not delivered within")


async def test_ack_before_the_send_is_recorded(w: World) -> None:
    nid = w.ledger.enqueue(person(102), "main")
    [row] = await w.runner.call(w.ledger.store.lease_due, w.clock.now(), 10, None, [nid])
    message = Message(row.channel, row.recipient, row.fields)
    outcome = await w.channels["whatsapp"].send(message)  # as the dispatcher would
    await w.acks(3)  # every ack arrives while the attempt is not recorded yet
    assert w.ledger.state(nid) is S.SENDING
    assert w.ledger.pending_acks() == 3
    result = AttemptResult(
        nid, w.clock.now(), S.SENT, {"kind": "accepted"}, provider_id=outcome.provider_id
    )
    await w.runner.call(w.ledger.store.record_attempts, [result])
    await w.runner.call(w.ledger.settle, [nid])  # the dispatcher's hook
    assert w.ledger.state(nid) is S.READ
    assert w.ledger.pending_acks() == 0


async def test_hookinfo_polling_when_no_webhook_arrives(w: World) -> None:
    nid = w.ledger.enqueue(person(7), "main")  # …0007: statuses only in hookInfo
    await w.dispatch()
    provider_id = w.ledger.get(nid).provider_id
    assert provider_id is not None
    await w.produced(provider_id, 3)
    assert await w.poll(poll_after=60) == 0  # too early to ask
    w.clock.advance(61)
    assert await w.poll(poll_after=60) == 1
    assert w.ledger.state(nid) is S.READ
    assert acks_of(w, nid) == [("delivered", True), ("read", True), ("sent", False)]
    polled = [h.detail["source"] for h in w.ledger.store.history(nid) if h.kind == "ack"]
    assert set(polled) == {"poll"}
    assert await w.poll(poll_after=60) == 0  # nothing left to ask about


async def test_a_read_only_in_hookinfo_is_found_for_a_delivered_message(w: World) -> None:
    # Issue 15.5: the delivered ack arrived, the read ack was lost (only hookInfo has it);
    # polling looked at `sent` rows only, so the message expired and its fallback ran.
    nid = w.ledger.enqueue(person(7), "reader")  # …0007: statuses only in hookInfo
    await w.dispatch()
    provider_id = w.ledger.get(nid).provider_id
    assert provider_id is not None
    await w.produced(provider_id, 3)
    w.ledger.acks(Ack(provider_id, "delivered"))  # the one webhook call that got through
    assert w.ledger.state(nid) is S.DELIVERED
    w.clock.advance(61)
    assert await w.poll(poll_after=60) == 1
    assert w.ledger.state(nid) is S.READ
    w.clock.advance(15 * 60)
    await w.dispatch()
    assert w.ledger.state(nid) is S.READ
    assert w.ledger.children(nid) == [] and w.crm.bodies == []  # no fallback


async def test_send_window_defers_with_an_injected_clock(w: World) -> None:
    madrid = ZoneInfo("Europe/Madrid")
    # the fake clock starts on Thursday 2026-05-28 at 22:26 in Madrid: the window is closed
    nid = w.ledger.enqueue(person(103), "windowed")
    await w.dispatch()
    assert w.sent_templates() == []
    assert w.ledger.state(nid) is S.QUEUED
    opens = datetime.datetime(2026, 5, 29, 9, 0, tzinfo=madrid).timestamp()
    w.clock.advance(opens - w.clock.now() - 1)
    await w.dispatch()
    assert w.sent_templates() == []
    w.clock.advance(1)
    await w.dispatch()
    assert w.sent_templates() == [("next_step", "34600000103")]
    await w.acks(3)
    assert w.ledger.state(nid) is S.READ


async def test_supersede(w: World) -> None:
    first = w.ledger.enqueue(person(104, stage="docs"), "latest")
    second = w.ledger.enqueue(person(104, stage="review"), "latest")
    await w.dispatch()
    await w.acks(3)
    assert w.ledger.state(first) is S.SUPERSEDED
    assert w.ledger.state(second) is S.READ
    [body] = [r.body for r in w.sandbox.sends()]
    texts: list[Any] = [p["text"] for p in body["params"][0]["parameters"]]
    assert texts[2] == "upload documents (review)"
    third = w.ledger.enqueue(person(104, stage="approved"), "latest")
    assert w.ledger.state(second) is S.READ  # already sent: not taken back
    assert w.ledger.state(third) is S.QUEUED


async def test_registration_keeps_the_channel_s_other_urls(w: World) -> None:
    [instance] = w.sandbox.state.instances.values()
    assert instance.settings["ackNotificationsOn"] is True
    [ours] = instance.webhooks
    assert ours.endswith("/webhooks/1msg/s3cret")
    channel: Any = w.channels["whatsapp"]
    inbox = "https://app.1msg.io/service/service_core/whatsapp/webhook/7"
    stale = ours.replace("s3cret", "old-secret")
    await channel.set_webhooks([inbox, stale])
    await channel.update_settings(ackNotificationsOn=False)
    done = await register_webhook(channel, ours)
    assert done.changed
    assert instance.webhooks == [inbox, ours]
    assert instance.settings["ackNotificationsOn"] is True
