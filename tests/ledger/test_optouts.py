"""The opt-out contract, on every backend: a suppressed recipient's notifications are written
skipped (opted out), queued ones are skipped when the opt-out is added, and none goes back to
queued while it holds (retries, releases, leases given back)."""

from __future__ import annotations

import pytest

from nextstep.engine.ledger.base import (
    OPTED_OUT,
    AttemptResult,
    NewInbound,
    OptOut,
    Store,
)
from nextstep.engine.model import ALL_CHANNELS, InboundMessage, State
from tests.support.notifications import T0, new_notification

PHONE, OTHER = "34600111222", "34600333444"


def _optout(channel: str = ALL_CHANNELS, recipient: str = PHONE, at: float = T0) -> OptOut:
    return OptOut(recipient, channel, at, "cli", "asked on the phone")


def _state(store: Store, nid: int) -> tuple[State, str]:
    found = store.get(nid)
    assert found is not None
    return found.state, found.reason


def test_enqueue_to_an_opted_out_recipient_is_written_skipped(store: Store) -> None:
    store.add_optouts([_optout()])
    done = store.enqueue([new_notification(PHONE), new_notification(OTHER)])
    assert [(d.state, d.reason) for d in done] == [(State.SKIPPED, OPTED_OUT), (State.QUEUED, "")]
    assert _state(store, done[0].id) == (State.SKIPPED, OPTED_OUT)
    [created, skipped] = store.history(done[0].id)
    assert created.kind == "created"
    assert skipped.detail == {
        "state": "skipped",
        "reason": OPTED_OUT,
        "optout": {"channel": ALL_CHANNELS, "at": T0, "how": "cli"},
    }
    assert [n.id for n in store.lease_due(T0 + 1, 10)] == [done[1].id]


def test_a_duplicate_stays_a_duplicate(store: Store) -> None:
    first = store.enqueue([new_notification(PHONE, dedupe_key="k")])[0]
    store.add_optouts([_optout()])
    again = store.enqueue([new_notification(PHONE, dedupe_key="k")])[0]
    assert (again.state, again.duplicate_of) == (State.SKIPPED, first.id)
    assert _state(store, first.id) == (State.SKIPPED, OPTED_OUT)


def test_adding_skips_queued_retries_and_fallbacks_once(store: Store) -> None:
    first, retry, other = (
        r.id
        for r in store.enqueue(
            [new_notification(PHONE), new_notification(PHONE), new_notification(OTHER)]
        )
    )
    # the second one failed once and waits for its retry
    [leased] = store.lease_due(T0, 1, ids=[retry])
    failed = AttemptResult(
        retry, T0, State.QUEUED, {"kind": "transient"}, next_attempt_at=T0 + 60, attempt=1
    )
    store.record_attempts([failed])
    child = store.enqueue([new_notification(PHONE, channel="mail", parent_id=first)])[0].id
    result = store.add_optouts([_optout(), _optout()])
    assert (result.added, result.already) == (1, 1)
    assert sorted(result.skipped) == [
        (first, "loan-docs"),
        (retry, "loan-docs"),
        (child, "loan-docs"),
    ]
    for nid in (first, retry, child):
        assert _state(store, nid) == (State.SKIPPED, OPTED_OUT)
    assert _state(store, other)[0] is State.QUEUED
    again = store.add_optouts([_optout(at=T0 + 5)])
    assert (again.added, again.already, again.skipped) == (0, 1, ())
    assert store.optouts() == [_optout()]  # the first one kept as it was
    assert leased.id == retry


@pytest.mark.parametrize(
    ("optout_channel", "scopes", "stopped"),
    [
        pytest.param(ALL_CHANNELS, None, True, id="all-stops-default"),
        pytest.param("whatsapp", None, True, id="own-channel-stops-default"),
        pytest.param("sms", None, False, id="other-channel-does-not"),
        pytest.param(ALL_CHANNELS, (), False, id="exempt-ignores-all"),
        pytest.param("whatsapp", (), False, id="exempt-ignores-own"),
        pytest.param("sms", ("whatsapp", ALL_CHANNELS, "sms"), True, id="honoured-channel"),
        pytest.param("mail", ("whatsapp", ALL_CHANNELS, "sms"), False, id="not-honoured"),
    ],
)
@pytest.mark.parametrize("optout_first", [True, False], ids=["then-enqueue", "then-optout"])
def test_which_optouts_stop_a_notification(
    store: Store,
    optout_channel: str,
    scopes: tuple[str, ...] | None,
    stopped: bool,
    optout_first: bool,
) -> None:
    item = new_notification(PHONE, optout=scopes)
    if optout_first:
        store.add_optouts([_optout(optout_channel)])
        nid = store.enqueue([item])[0].id
    else:
        nid = store.enqueue([item])[0].id
        store.add_optouts([_optout(optout_channel)])
    assert _state(store, nid)[0] is (State.SKIPPED if stopped else State.QUEUED)


def test_nothing_goes_back_to_queued_while_opted_out(store: Store) -> None:
    retried, released, given_back = (
        r.id for r in store.enqueue([new_notification(PHONE) for _ in range(3)])
    )
    assert len(store.lease_due(T0, 10)) == 3  # all three are being sent
    store.record_attempts(
        [AttemptResult(released, T0, State.IN_DOUBT, {"kind": "in_doubt"}, attempt=1)]
    )
    store.add_optouts([_optout("whatsapp")])  # while they are away from the queue
    store.record_attempts(
        [
            AttemptResult(
                retried, T0, State.QUEUED, {"kind": "transient"}, next_attempt_at=T0 + 9, attempt=1
            )
        ]
    )
    store.requeue([(given_back, T0 + 1)], T0)
    assert store.release(released, T0 + 2)
    for nid in (retried, released, given_back):
        assert _state(store, nid) == (State.SKIPPED, OPTED_OUT)
        details = [h.detail for h in store.history(nid)]
        assert {"state": "skipped", "reason": OPTED_OUT} in details
    assert store.lease_due(T0 + 100, 10) == []


def test_removing_lets_notifications_through_again(store: Store) -> None:
    store.add_optouts([_optout(), _optout("whatsapp")])
    assert store.remove_optouts([(PHONE, ALL_CHANNELS), (PHONE, "nope")]) == 1
    assert store.enqueue([new_notification(PHONE)])[0].state is State.SKIPPED
    assert store.remove_optouts([(PHONE, "whatsapp")]) == 1
    assert store.enqueue([new_notification(PHONE)])[0].state is State.QUEUED
    assert store.optouts() == []


def test_listing_by_recipient(store: Store) -> None:
    store.add_optouts([_optout("whatsapp"), _optout(), _optout(recipient=OTHER)])
    assert [(o.recipient, o.channel) for o in store.optouts()] == [
        (PHONE, ALL_CHANNELS),
        (PHONE, "whatsapp"),
        (OTHER, ALL_CHANNELS),
    ]
    assert [o.channel for o in store.optouts(recipients=[PHONE])] == [ALL_CHANNELS, "whatsapp"]
    assert len(store.optouts(limit=1)) == 1


def _inbound(
    provider_id: str, text: str = "ok", *, channel: str = "whatsapp", **extra: object
) -> NewInbound:
    message = InboundMessage(provider_id, PHONE, text, "chat", T0 - 1, **extra)  # type: ignore[arg-type]
    return NewInbound(channel, message, T0)


def test_inbound_messages_are_kept_once_in_order(store: Store) -> None:
    sent = store.enqueue([new_notification(PHONE, dedupe_key="case-1")])[0].id
    store.lease_due(T0, 1)
    store.record_attempts(
        [AttemptResult(sent, T0, State.SENT, {"kind": "accepted"}, provider_id="wamid.OUT")]
    )
    first, again, reply, other = store.record_inbound(
        [
            _inbound("wamid.A", "hello"),
            _inbound("wamid.A", "hello"),
            _inbound("wamid.B", "already sent them", quoted_id="wamid.OUT"),
            _inbound("wamid.A", "same id, other channel", channel="second"),
        ]
    )
    assert again is None and first is not None and reply is not None and other is not None
    assert reply.reply_to == sent
    assert store.record_inbound([_inbound("wamid.B")]) == [None]
    kept = store.inbound_after(0)
    assert [m.provider_id for m in kept] == ["wamid.A", "wamid.B", "wamid.A"]
    assert [m.id for m in kept] == sorted(m.id for m in kept)
    assert kept[1].reply_to is not None
    assert (kept[1].reply_to.id, kept[1].reply_to.rule_id, kept[1].reply_to.dedupe_key) == (
        sent,
        "loan-docs",
        "case-1",
    )
    assert kept[1].reply_to.event["first_name"] == "maria"
    assert (kept[0].sent_at, kept[0].received_at, kept[0].text) == (T0 - 1, T0, "hello")
    assert [m.provider_id for m in store.inbound_after(first.id, channels=["second"])] == [
        "wamid.A"
    ]
    assert store.last_inbound_id() == other.id
    assert store.prune_inbound(T0 + 1) == 3
    assert store.inbound_after(0) == [] and store.last_inbound_id() == 0
    later = store.record_inbound([_inbound("wamid.C")])[0]
    assert later is not None and later.id > other.id  # ids are never given twice


def test_a_new_inbound_message_applies_its_optout_once(store: Store) -> None:
    queued = store.enqueue([new_notification(PHONE)])[0].id
    stop = NewInbound(
        "whatsapp",
        InboundMessage("wamid.STOP", PHONE, " Stop "),
        T0,
        keyword="stop",
        optout=OptOut(PHONE, "whatsapp", T0, "keyword", " Stop "),
    )
    [done] = store.record_inbound([stop])
    assert done is not None and done.optout is not None
    assert done.optout.skipped == ((queued, "loan-docs"),)
    store.remove_optouts([(PHONE, "whatsapp")])
    assert store.record_inbound([stop]) == [None]  # a provider retry changes nothing
    assert store.optouts() == []
    start = NewInbound(
        "whatsapp",
        InboundMessage("wamid.START", PHONE, "start"),
        T0 + 1,
        keyword="start",
        lift=("whatsapp", ALL_CHANNELS),
    )
    store.add_optouts([_optout(), _optout("whatsapp")])
    [lifted] = store.record_inbound([start])
    assert lifted is not None and lifted.lifted == 2
    assert store.optouts() == []
    assert [m.keyword for m in store.inbound_after(0)] == ["stop", "start"]
