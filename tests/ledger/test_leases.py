"""Leases on every backend: owners, marks as the fence, recovery of expired or gone owners only,
the workers table (issue 10 section 3, issue 15 defect 10)."""

from __future__ import annotations

from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.ledger.leases import WorkerRecord, gone
from nextstep.engine.model import State
from tests.support.notifications import T0, new_notification


def _ids(store: Store, n: int) -> list[int]:
    return [r.id for r in store.enqueue([new_notification(str(i)) for i in range(n)])]


def test_only_marked_rows_become_in_doubt_the_others_are_due_again(store: Store) -> None:
    a, b, c = _ids(store, 3)
    store.lease_due(T0, 10, owner="w1", lease_until=T0 + 30)
    assert store.mark_sending([a], T0, owner="w1") == [a]
    recovered = store.recover(T0 + 1, gone=["w1"])
    assert (recovered.in_doubt, recovered.requeued) == ([a], [b, c])
    states = {i: store.get(i).state for i in (a, b, c)}  # type: ignore[union-attr]
    assert states == {a: State.IN_DOUBT, b: State.QUEUED, c: State.QUEUED}
    assert sorted(n.id for n in store.lease_due(T0 + 1, 10, owner="w2")) == [b, c]
    assert [h.detail.get("state") for h in store.history(b)] == ["queued", "queued"]


def test_recovery_leaves_live_leases_alone_until_they_run_out(store: Store) -> None:
    (a,) = _ids(store, 1)
    store.lease_due(T0, 10, owner="w1", lease_until=T0 + 30)
    assert store.recover(T0 + 29, gone=["w9"]).requeued == []
    assert store.renew_leases("w1", T0 + 60) == 1
    assert store.recover(T0 + 59, gone=[]).requeued == []
    assert store.recover(T0 + 60, gone=[]).requeued == [a]


def test_a_worker_that_lost_its_lease_can_neither_mark_nor_write(store: Store) -> None:
    (a,) = _ids(store, 1)
    store.lease_due(T0, 10, owner="w1", lease_until=T0 + 1)
    store.recover(T0 + 2, gone=[])  # w1 was silent too long: due again
    assert [n.id for n in store.lease_due(T0 + 2, 10, owner="w2", lease_until=T0 + 30)] == [a]
    assert store.mark_sending([a], T0 + 2, owner="w1") == []  # the fence: w1 must not send
    store.requeue([(a, T0 + 9)], T0 + 2, owner="w1")
    store.record_attempts(
        [AttemptResult(a, T0 + 2, State.FAILED, {"kind": "recipient"}, attempt=1)], owner="w1"
    )
    row = store.get(a)
    assert row is not None and row.state is State.SENDING
    assert store.mark_sending([a], T0 + 2, owner="w2") == [a]
    store.record_attempts(
        [AttemptResult(a, T0 + 3, State.SENT, {"kind": "accepted"}, provider_id="w.a", attempt=1)],
        owner="w2",
    )
    row = store.get(a)
    assert row is not None and row.state is State.SENT
    assert store.recover(T0 + 100, gone=["w2"]).in_doubt == []  # a result ends the lease


def test_workers_table_heartbeat_and_stop(store: Store) -> None:
    store.heartbeat(WorkerRecord("w1", "h", 10, T0, T0, 30.0, {"channels": ["whatsapp"]}))
    store.heartbeat(WorkerRecord("w1", "h", 10, T0, T0 + 5, 30.0, {"triggers": ["csv"]}))
    store.heartbeat(WorkerRecord("w2", "h", 11, T0, T0 + 1, 30.0, {}))
    store.stop_worker("w2", T0 + 2)
    rows = store.workers()
    assert [(w.id, w.last_seen, dict(w.holds), w.stopped_at) for w in rows] == [
        ("w1", T0 + 5, {"triggers": ["csv"]}, None),
        ("w2", T0 + 2, {}, T0 + 2),
    ]
    assert rows[0].as_dict(T0 + 6)["alive"] and not rows[1].as_dict(T0 + 6)["alive"]


def test_who_is_gone() -> None:
    def w(wid: str, host: str, pid: int, seen: float, stopped: float | None = None) -> WorkerRecord:
        return WorkerRecord(wid, host, pid, T0, seen, 30.0, {}, stopped)

    workers = [
        w("me", "h", 1, T0),
        w("live", "h", 2, T0),
        w("dead-pid", "h", 3, T0),
        w("silent", "other", 4, T0 - 31),
        w("far", "other", 3, T0),
        w("stopped", "other", 5, T0, T0),
    ]
    found = gone(workers, T0, host="h", me="me", alive=lambda pid: pid != 3)
    assert found == ["dead-pid", "silent", "stopped"]


def test_recipient_slots_hold_the_pair_rate_across_workers(store: Store, backend: str) -> None:
    first = store.claim_recipients([("wa", "34600111142", 6.0), ("wa", "34600222242", 6.0)], T0)
    assert first == {}
    again = store.claim_recipients(
        [("wa", "34600111142", 6.0), ("sms", "34600111142", 6.0)], T0 + 3
    )
    if backend == "sqlite":  # one daemon per SQLite ledger: its own spacing is enough
        assert again == {}
        return
    (slot,) = again.values()
    assert list(again) == [("wa", "34600111142")] and T0 + 6 < slot < T0 + 7
    assert store.claim_recipients([("wa", "34600111142", 6.0)], slot) == {}


def test_a_slow_owners_answer_settles_the_doubt_its_takeover_raised(store: Store) -> None:
    (a,) = _ids(store, 1)
    store.lease_due(T0, 10, owner="w1", lease_until=T0 + 3)
    assert store.mark_sending([a], T0, owner="w1") == [a]
    assert store.recover(T0 + 4, gone=[]).in_doubt == [a]  # w1 looked dead: in doubt…
    store.record_attempts(  # …but it was only slow, and the provider accepted the message
        [AttemptResult(a, T0 + 5, State.SENT, {"kind": "accepted"}, provider_id="p", attempt=1)],
        owner="w1",
    )
    row = store.get(a)
    assert row is not None and (row.state, row.provider_id) == (State.SENT, "p")
    store.record_attempts(  # nobody else's answer applies
        [AttemptResult(a, T0 + 6, State.FAILED, {"kind": "recipient"}, attempt=1)], owner="w2"
    )
    assert store.get(a).state is State.SENT  # type: ignore[union-attr]
