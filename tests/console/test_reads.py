"""The console's ledger reads (ConsoleReads), on every backend: counts per period, the median
time to delivered, the list's filters and pages, traces, in-doubt decisions."""

from __future__ import annotations

import pytest

from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.ledger.reads import Counts, Cursor, Decision, Filters
from nextstep.engine.model import State
from tests.console.ledger import Ledger, console_ledger
from tests.support.notifications import T0, new_notification


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return console_ledger(store)


def _fill(store: Store) -> list[int]:
    items = [
        new_notification(f"3460011{i:04d}", dedupe_key=f"k{i}", created_at=T0 + i, rule_id=rule)
        for i, rule in enumerate(["a", "a", "b", "a", "b"])
    ]
    items.append(new_notification("34600119999", dedupe_key="k0", created_at=T0 + 9, rule_id="a"))
    return [e.id for e in store.enqueue(items)]


def _table(counts: Counts) -> tuple[dict[tuple[str, int, str], int], ...]:
    states = {(r, p, s): n for r, p, s, n in counts.states}
    skipped = {(r, p, k): n for r, p, k, n in counts.skipped}
    return states, skipped


def test_period_counts_by_rule_period_and_state_with_skip_reasons(ledger: Ledger) -> None:
    _fill(ledger)
    p = int(T0 // 5)  # T0 + 0…4 fall in periods p and p + 1 (T0 is not a multiple of 5)
    states, skipped = _table(ledger.period_counts(["a", "c"], T0 - 1, T0 + 10, 5.0))
    # b has no rule version kept and is not asked for; c has no notifications
    assert {rule for rule, _, _ in states} == {"a"}
    assert sum(n for (_, _, s), n in states.items() if s == "queued") == 3
    assert sum(states.values()) == 4
    assert {period for _, period, _ in states} <= {p, p + 1, p + 2}
    assert skipped == {("a", int((T0 + 9) // 5), "duplicate of #…"): 1}
    ledger.save_rule_version("b", "v1", {"id": "b"})
    states, _ = _table(ledger.period_counts(["a"], T0 - 1, None, 3600.0))
    assert {(r, s): n for (r, _, s), n in states.items()} == {
        ("a", "queued"): 3,
        ("a", "skipped"): 1,
        ("b", "queued"): 2,
    }
    states, skipped = _table(ledger.period_counts(["a"], T0 + 1, T0 + 3, 3600.0))
    assert sum(states.values()) == 2 and skipped == {}  # T0 + 1 and T0 + 2
    assert ledger.period_counts([], T0 + 100, None, 60.0) == Counts()


def test_median_time_to_delivered_comes_from_the_first_delivered_ack(ledger: Ledger) -> None:
    ids = _fill(ledger)
    ledger.lease_due(T0 + 100, 10)
    ledger.record_attempts(
        [
            AttemptResult(i, T0 + 100, State.SENT, {"kind": "accepted"}, provider_id=f"p{i}")
            for i in ids[:5]
        ]
    )
    with ledger.transaction() as tx:
        tx.set_states([(ids[0], State.SENT, State.READ), (ids[1], State.SENT, State.READ)], T0)
        tx.add_history(
            [
                (ids[0], T0 + 40, "ack", {"status": "read"}),
                (ids[0], T0 + 30, "ack", {"status": "delivered"}),
                (ids[0], T0 + 20, "ack", {"status": "sent"}),
                (ids[1], T0 + 51, "ack", {"status": "delivered", "error": "\x00"}),
            ]
        )
    assert ledger.times_to_delivered(["a", "b"], T0 - 1) == {"a": pytest.approx(40.0)}
    assert ledger.times_to_delivered(["a"], T0 + 1) == {"a": pytest.approx(50.0)}
    assert ledger.times_to_delivered([], T0) == {}


def test_browse_filters_and_pages_by_key(ledger: Ledger) -> None:
    ids = _fill(ledger)
    page = ledger.browse(Filters(), None, 4)
    assert [n.id for n in page] == sorted(ids, reverse=True)[:4]
    rest = ledger.browse(Filters(), Cursor(page[-1].created_at, page[-1].id), 4)
    assert [n.id for n in rest] == sorted(ids, reverse=True)[4:]
    assert [n.id for n in ledger.browse(Filters(rule_id="b"), None, 10)] == [ids[4], ids[2]]
    assert [n.id for n in ledger.browse(Filters(phone_tail="110003"), None, 10)] == [ids[3]]
    assert [n.id for n in ledger.browse(Filters(phone_tail="0003"), None, 10)] == [ids[3]]
    assert ledger.browse(Filters(phone_tail="990003"), None, 10) == []
    assert [n.id for n in ledger.browse(Filters(dedupe_key="k0"), None, 10)] == [ids[5], ids[0]]
    assert [n.id for n in ledger.browse(Filters(state="skipped"), None, 10)] == [ids[5]]
    window = Filters(since=T0 + 1, until=T0 + 3)
    assert [n.id for n in ledger.browse(window, None, 10)] == [ids[2], ids[1]]
    both = Filters(rule_id="a", state="queued", since=T0)
    assert [n.id for n in ledger.browse(both, None, 10)] == [ids[3], ids[1], ids[0]]
    assert Cursor.parse(Cursor(T0 + 0.5, 7).text()) == Cursor(T0 + 0.5, 7)
    assert Cursor.parse("nonsense") is None


def test_pages_of_rows_created_at_the_same_time_follow_the_ids(ledger: Ledger) -> None:
    ids = [e.id for e in ledger.enqueue([new_notification(f"3460{i}") for i in range(5)])]
    first = ledger.browse(Filters(), None, 2)
    second = ledger.browse(Filters(), Cursor(first[-1].created_at, first[-1].id), 2)
    third = ledger.browse(Filters(), Cursor(second[-1].created_at, second[-1].id), 2)
    assert [n.id for n in first + second + third] == sorted(ids, reverse=True)


def test_trace_follows_the_fallback_chain_both_ways(ledger: Ledger) -> None:
    parent = ledger.enqueue([new_notification(created_at=T0)])[0].id
    child = ledger.enqueue(
        [new_notification(created_at=T0 + 1, parent_id=parent, fallback_step=0)]
    )[0].id
    with ledger.transaction() as tx:
        detail = {"fallback_step": 0, "child": child, "on": "failed"}
        tx.add_history([(parent, T0 + 1, "fallback", detail)])
    for ident in (parent, child):
        found = ledger.trace(ident)
        assert found is not None
        assert [r.id for r in found.chain] == [parent, child]
        assert found.chain[1].fallback_step == 0 and found.chain[1].parent_id == parent
    found = ledger.trace(parent)
    assert found is not None and [h.kind for h in found.history] == ["created", "fallback"]
    assert ledger.trace(999) is None


def test_decisions_are_recorded_with_who_and_why(ledger: Ledger) -> None:
    ident = ledger.enqueue([new_notification()])[0].id
    ledger.lease_due(T0, 10)
    ledger.mark_sending([ident], T0)
    ledger.recover_interrupted(T0 + 1)
    assert [n.id for n in ledger.in_doubt(10)] == [ident]
    assert ledger.decide(ident, Decision("release", "olga", "not on the phone", T0 + 2))
    assert ledger.get(ident).state is State.QUEUED  # type: ignore[union-attr]
    assert not ledger.decide(ident, Decision("release", "olga", "again", T0 + 3))
    assert ledger.decide(ident, Decision("cancel", "olga", "client called", T0 + 4))
    assert not ledger.decide(ident, Decision("cancel", "olga", "twice", T0 + 5))
    notes = [dict(h.detail) for h in ledger.history(ident) if h.kind == "note"]
    assert notes == [
        {"decision": "release", "by": "olga", "reason": "not on the phone"},
        {"decision": "cancel", "by": "olga", "reason": "client called"},
    ]
    assert ledger.get(ident).reason == "client called"  # type: ignore[union-attr]
    assert ledger.in_doubt(10) == []


def test_rule_versions_are_read_back_by_version(ledger: Ledger) -> None:
    ledger.save_rule_version("a", "v1", {"id": "a", "when": "x"})
    ledger.save_rule_version("a", "v2", {"id": "a", "when": "y\x00"})
    ledger.save_rule_version("b", "v1", {"id": "b"})
    assert ledger.rule_versions("a") == {
        "v1": {"id": "a", "when": "x"},
        "v2": {"id": "a", "when": "y\x00"},
    }
    assert ledger.rule_versions("zzz") == {}
