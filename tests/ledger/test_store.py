"""The ledger contract, on every backend: dedupe, leasing, attempts, history, recovery, reads."""

from __future__ import annotations

import pytest

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.model import Progress, State
from tests.support.notifications import T0, new_notification


def _sent(nid: int, at: float, provider_id: str = "wamid.1") -> AttemptResult:
    return AttemptResult(
        nid, at, State.SENT, {"kind": "accepted"}, provider_id=provider_id, attempt=1
    )


def test_enqueue_writes_rows_history_and_progress(store: Store) -> None:
    results = store.enqueue(
        [new_notification("1"), new_notification("2")], [Progress("csv:a.csv", "2")]
    )
    assert [r.state for r in results] == [State.QUEUED, State.QUEUED]
    first = store.get(results[0].id)
    assert first is not None
    assert first.state is State.QUEUED and first.next_attempt_at == T0
    assert first.fields["params"] == ["Maria", "loan", "upload documents"]
    assert store.get_progress("csv:a.csv") == "2"
    assert [h.kind for h in store.history(first.id)] == ["created"]
    store.enqueue([], [Progress("csv:a.csv", "9")])
    assert store.get_progress("csv:a.csv") == "9"


def test_duplicate_is_kept_as_skipped_and_never_leased(store: Store) -> None:
    first, dup = store.enqueue(
        [new_notification("1", dedupe_key="k"), new_notification("1", dedupe_key="k")]
    )
    later = store.enqueue([new_notification("1", dedupe_key="k")])[0]
    other_rule = store.enqueue([new_notification("1", dedupe_key="k", rule_id="other")])[0]
    assert first.state is State.QUEUED
    assert (dup.state, dup.duplicate_of) == (State.SKIPPED, first.id)
    assert (later.state, later.duplicate_of) == (State.SKIPPED, first.id)
    assert other_rule.state is State.QUEUED
    skipped = store.get(dup.id)
    assert skipped is not None and skipped.reason == f"duplicate of #{first.id}"
    leased = store.lease_due(T0, 10)
    assert sorted(n.id for n in leased) == sorted([first.id, other_rule.id])


def test_no_dedupe_key_never_collides(store: Store) -> None:
    results = store.enqueue([new_notification("1"), new_notification("1")])
    assert [r.state for r in results] == [State.QUEUED, State.QUEUED]


def test_supersede_cancels_older_queued_of_the_same_key(store: Store) -> None:
    old = store.enqueue([new_notification("1", supersede_key="case-7")])[0]
    new = store.enqueue([new_notification("1", supersede_key="case-7", created_at=T0 + 1)])[0]
    gone = store.get(old.id)
    assert gone is not None and gone.state is State.SUPERSEDED
    assert gone.reason == f"superseded by #{new.id}"
    assert [n.id for n in store.lease_due(T0 + 2, 10)] == [new.id]


def test_lease_is_due_first_scoped_and_moves_to_sending(store: Store) -> None:
    ids = [
        r.id
        for r in store.enqueue(
            [
                new_notification("1", created_at=T0 + 5),
                new_notification("2", created_at=T0),
                new_notification("3", created_at=T0, not_before=T0 + 100),
                new_notification("4", created_at=T0, channel="mail"),
            ]
        )
    ]
    assert store.lease_due(T0 + 10, 10, channels=[]) == []
    leased = store.lease_due(T0 + 10, 10, channels=["whatsapp"])
    assert [n.id for n in leased] == [ids[1], ids[0]]
    assert all(n.state is State.SENDING for n in leased)
    assert store.lease_due(T0 + 10, 10, channels=["whatsapp"]) == []
    assert store.next_due(["whatsapp"]) == T0 + 100
    assert [n.id for n in store.lease_due(T0 + 10, 10, ids=[ids[3]])] == [ids[3]]


def test_lease_expires_what_outlived_valid_until(store: Store) -> None:
    stale, fresh = store.enqueue(
        [
            new_notification("1", valid_until=T0 + 1),
            new_notification("2", valid_until=T0 + 100),
        ]
    )
    assert [n.id for n in store.lease_due(T0 + 5, 10)] == [fresh.id]
    expired = store.get(stale.id)
    assert expired is not None and expired.state is State.EXPIRED
    assert store.history(stale.id)[-1].detail["state"] == "expired"


def test_record_attempts_updates_rows_and_history(store: Store) -> None:
    a, b, c = (r.id for r in store.enqueue([new_notification(str(i)) for i in range(3)]))
    store.enqueue([new_notification("x", expect="delivered", within=900.0)])
    store.lease_due(T0, 10)
    store.record_attempts(
        [
            _sent(a, T0 + 1),
            AttemptResult(
                b,
                T0 + 1,
                State.QUEUED,
                {"kind": "transient", "http_status": 503},
                next_attempt_at=T0 + 31,
                reason="503",
                failure_class="transient",
                attempt=1,
            ),
            AttemptResult(
                c,
                T0 + 1,
                State.QUEUED,
                {"kind": "account"},
                next_attempt_at=T0 + 1,
                failure_class="account",
                attempt=1,
                counts=False,
            ),
        ]
    )
    sent, retry, held = store.get(a), store.get(b), store.get(c)
    assert sent and retry and held
    assert (sent.state, sent.attempts, sent.provider_id) == (State.SENT, 1, "wamid.1")
    assert (retry.state, retry.attempts, retry.next_attempt_at) == (State.QUEUED, 1, T0 + 31)
    assert (held.attempts, held.failure_class) == (0, "account")
    line = store.history(b)[-1]
    assert line.kind == "attempt"
    assert line.detail["outcome"] == {"kind": "transient", "http_status": 503}
    assert line.detail["next_attempt_at"] == T0 + 31
    assert store.history(c)[-1].detail["counted"] is False
    assert store.find(provider_id="wamid.1")[0].id == a


def test_sent_sets_the_deadline_from_within(store: Store) -> None:
    nid = store.enqueue([new_notification("x", expect="delivered", within=900.0)])[0].id
    store.lease_due(T0, 10)
    store.record_attempts([_sent(nid, T0 + 2)])
    row = store.get(nid)
    assert row is not None and row.deadline_at == T0 + 902


def test_requeue_gives_back_without_an_attempt(store: Store) -> None:
    nid = store.enqueue([new_notification("1")])[0].id
    store.lease_due(T0, 10)
    store.requeue([(nid, T0 + 6)], T0)
    row = store.get(nid)
    assert row is not None
    assert (row.state, row.attempts, row.next_attempt_at) == (State.QUEUED, 0, T0 + 6)
    assert store.lease_due(T0 + 5, 10) == []
    assert [n.id for n in store.lease_due(T0 + 6, 10)] == [nid]


def test_recover_release_and_cancel(store: Store) -> None:
    a, b = (r.id for r in store.enqueue([new_notification("1"), new_notification("2")]))
    store.lease_due(T0, 1)
    assert store.mark_sending([a], T0) == [a]  # its request was about to be written
    assert store.recover_interrupted(T0 + 1) == 1
    doubt = store.get(a)
    assert doubt is not None and doubt.state is State.IN_DOUBT
    assert [n.id for n in store.list(state=State.IN_DOUBT)] == [a]
    assert store.cancel(b, T0 + 2, "operator said no")
    assert not store.cancel(b, T0 + 2)
    assert store.release(a, T0 + 3)
    assert not store.release(a, T0 + 3)
    assert [n.id for n in store.lease_due(T0 + 3, 10)] == [a]
    assert [h.detail.get("state") for h in store.history(a)] == [
        "queued",
        "in_doubt",
        "queued",
    ]


def test_in_doubt_settled_by_the_provider_history(store: Store) -> None:
    a, b, c = (
        r.id
        for r in store.enqueue(
            [new_notification("1"), new_notification("2"), new_notification("3", within=600)]
        )
    )
    store.lease_due(T0, 10)
    assert store.mark_sending([a, b, c], T0) == [a, b, c]  # their requests were written
    assert store.recover_interrupted(T0 + 1) == 3
    found = {"by": "history", "provider_id": "wamid.1"}
    with store.transaction() as tx:
        assert tx.resolve_in_doubt(a, T0 + 2, "wamid.1", found)
        assert not tx.resolve_in_doubt(a, T0 + 2, "wamid.1", found)  # no longer in doubt
        assert tx.resolve_in_doubt(b, T0 + 2, None, {"by": "history"})
        assert tx.resolve_in_doubt(c, T0 + 2, "wamid.3", {"by": "history"})
    sent, queued, timed = store.get(a), store.get(b), store.get(c)
    assert sent is not None and (sent.state, sent.provider_id) == (State.SENT, "wamid.1")
    assert queued is not None and queued.state is State.QUEUED
    assert timed is not None and timed.deadline_at == T0 + 2 + 600
    assert [n.id for n in store.lease_due(T0 + 2, 10)] == [b]
    assert store.history(a)[-1].detail == {"state": "sent", "from": "in_doubt", **found}


def test_counts_depth_and_list(store: Store) -> None:
    store.enqueue([new_notification("1"), new_notification("2", rule_id="r2")])
    store.enqueue([new_notification("3", created_at=T0 + 50, not_before=T0 + 60)])
    assert store.counts() == {("loan-docs", "queued"): 2, ("r2", "queued"): 1}
    assert store.counts(since=T0 + 10) == {("loan-docs", "queued"): 1}
    assert store.counts(rule_id="r2") == {("r2", "queued"): 1}
    assert store.queue_depth(T0) == 2
    assert len(store.list(limit=2)) == 2
    assert store.find(dedupe_key="none") == []
    assert store.get(999) is None


def test_rule_versions_are_kept_once(store: Store) -> None:
    store.save_rule_version("r", "v1", {"id": "r", "to": "{{ event.phone }}"})
    store.save_rule_version("r", "v1", {"id": "changed"})
    assert store.get_rule_version("r", "v1") == {"id": "r", "to": "{{ event.phone }}"}
    assert store.get_rule_version("r", "v2") is None


def test_a_ledger_survives_reopening(ledger_url: str) -> None:
    s = open_store(ledger_url)
    nid = s.enqueue([new_notification("1")])[0].id
    s.close()
    again = open_store(ledger_url)
    try:
        row = again.get(nid)
        assert row is not None and row.state is State.QUEUED
    finally:
        again.close()


def test_transaction_rolls_back_and_maps_errors(store: Store) -> None:
    with pytest.raises(StoreError), store.transaction() as tx:
        tx.enqueue([], [Progress("a", "1")])
        tx.add_history([(999_999, T0, "note", {})])  # no such notification
    assert store.get_progress("a") is None
    with pytest.raises(ValueError), store.transaction() as tx:
        tx.enqueue([], [Progress("b", "1")])
        raise ValueError("the caller's own error")
    assert store.get_progress("b") is None


def test_a_message_to_poll_is_claimed_by_one_poller(store: Store) -> None:
    # Several workers run the hookInfo poller: each message is asked about by one at a time.
    from nextstep.engine.delivery.poller import PollSettings, _candidates

    ids = [r.id for r in store.enqueue([new_notification(str(i)) for i in range(3)])]
    store.lease_due(T0, 10)
    store.record_attempts([_sent(nid, T0 + 1, f"wamid.{nid}") for nid in ids])
    settings = PollSettings(poll_after=60, poll_every=60, batch=2)
    now = T0 + 120
    first = [c.id for c in _candidates(store, now, ["whatsapp"], settings)]
    second = [c.id for c in _candidates(store, now, ["whatsapp"], settings)]
    assert first == ids[:2] and second == ids[2:]  # the first two were claimed
    assert _candidates(store, now, ["whatsapp"], settings) == []
    later = [c.id for c in _candidates(store, now + 61, ["whatsapp"], settings)]
    assert later == ids[:2]  # asked again once poll_every has passed
