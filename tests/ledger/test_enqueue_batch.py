"""A batch enqueue: ids in item order, the dedupe index as judge, optional columns, processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import NewNotification, Store
from nextstep.engine.model import State
from tests.support.notifications import T0, new_notification


def _expected(
    items: list[NewNotification], first_id: int, seen: dict[tuple[str, str], int]
) -> list[tuple[int, State, int | None]]:
    """What one-by-one inserts give: the next id each, the first of a key wins."""
    out: list[tuple[int, State, int | None]] = []
    for new_id, item in enumerate(items, first_id):
        key = (item.rule_id, item.dedupe_key) if item.dedupe_key is not None else None
        if key is not None and key in seen:
            out.append((new_id, State.SKIPPED, seen[key]))
            continue
        if key is not None:
            seen[key] = new_id
        out.append((new_id, State.QUEUED, None))
    return out


_item = st.builds(
    lambda rule, key, within, valid: new_notification(
        rule_id=rule, dedupe_key=key, within=within, valid_until=valid
    ),
    st.sampled_from(["a", "b"]),
    st.none() | st.sampled_from(["k1", "k2", "k3"]),
    st.none() | st.just(900.0),
    st.none() | st.just(T0 + 60),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batches=st.lists(st.lists(_item, max_size=12), min_size=1, max_size=4))
def test_batches_match_one_by_one_inserts(
    fresh_ledger: Callable[[], str], batches: list[list[NewNotification]]
) -> None:
    store = open_store(fresh_ledger())
    seen: dict[tuple[str, str], int] = {}
    next_id = 1
    for items in batches:
        results = store.enqueue(items)
        expected = _expected(items, next_id, seen)
        assert [(r.id, r.state, r.duplicate_of) for r in results] == expected
        for item, (nid, state, first) in zip(items, expected, strict=True):
            row = store.get(nid)
            assert row is not None
            assert (row.state, row.dedupe_key) == (state, item.dedupe_key)
            assert (row.within, row.valid_until) == (item.within, item.valid_until)
            assert row.reason == ("" if first is None else f"duplicate of #{first}")
            (line,) = store.history(nid)
            assert line.kind == "created" and line.detail["state"] == state.value
        next_id += len(items)
    store.close()


def test_every_optional_column_is_kept(store: Store) -> None:
    (parent,) = store.enqueue([new_notification("1")])
    items = [
        new_notification("2"),
        new_notification(
            "3",
            dedupe_key="k",
            not_before=T0 + 30,
            valid_until=T0 + 60,
            expect="delivered",
            within=900.0,
            supersede_key="case-1",
            parent_id=parent.id,
            fallback_step=0,
            trigger={"kind": "csv", "row": 7},
        ),
        new_notification("4", created_at=T0 + 5, not_before=T0),
    ]
    ids = [r.id for r in store.enqueue(items)]
    plain, full, late = (store.get(i) for i in ids)
    assert plain and full and late
    assert (plain.dedupe_key, plain.within, plain.parent_id, plain.next_attempt_at) == (
        None,
        None,
        None,
        T0,
    )
    assert (full.dedupe_key, full.valid_until, full.expect, full.within) == (
        "k",
        T0 + 60,
        "delivered",
        900.0,
    )
    assert (full.supersede_key, full.parent_id, full.fallback_step) == ("case-1", parent.id, 0)
    assert (full.next_attempt_at, full.trigger) == (T0 + 30, {"kind": "csv", "row": 7})
    assert late.next_attempt_at == T0 + 5  # not before its creation


def test_a_batch_larger_than_one_statement(store: Store) -> None:
    items = [new_notification(str(i), dedupe_key=str(i % 1500)) for i in range(1700)]
    results = store.enqueue(items)
    assert [r.id for r in results] == list(range(1, 1701))
    assert [r.state for r in results].count(State.SKIPPED) == 200
    assert results[1600].duplicate_of == 101
    last = store.get(1700)
    assert last is not None and last.recipient == "1699"


def test_supersedes_inside_one_batch_follow_item_order(store: Store) -> None:
    a, b, c = store.enqueue(
        [
            new_notification("1", supersede_key="case-7"),
            new_notification("2", supersede_key="case-7"),
            new_notification("3", supersede_key="case-8"),
        ]
    )
    first, second, other = store.get(a.id), store.get(b.id), store.get(c.id)
    assert first and second and other
    assert (first.state, first.reason) == (State.SUPERSEDED, f"superseded by #{b.id}")
    assert (second.state, other.state) == (State.QUEUED, State.QUEUED)
    assert [h.kind for h in store.history(a.id)] == ["created", "state"]


def _enqueue_keys(url: str, start: Any, keys: list[str]) -> list[tuple[int, str]]:
    """In another process: wait for the start signal, then enqueue ``keys`` in small batches."""
    store = open_store(url)
    start.wait()
    out: list[tuple[int, str]] = []
    for i in range(0, len(keys), 7):
        items = [new_notification(k, dedupe_key=k) for k in keys[i : i + 7]]
        out += [(r.id, r.state.value) for r in store.enqueue(items)]
    store.close()
    return out


def test_two_processes_never_queue_a_key_twice(ledger_url: str) -> None:
    open_store(ledger_url).close()  # migrated before the race
    keys = [f"k{i}" for i in range(120)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(2) as pool:
            runs = [
                pool.apply_async(_enqueue_keys, (ledger_url, start, keys)),
                pool.apply_async(_enqueue_keys, (ledger_url, start, list(reversed(keys)))),
            ]
            start.set()
            results = [run.get(timeout=60) for run in runs]
    assert sorted(state for r in results for _, state in r).count("queued") == len(keys)
    store = open_store(ledger_url)
    for key in keys:
        rows = store.find(dedupe_key=key)
        queued = [n for n in rows if n.state is State.QUEUED]
        assert len(rows) == 2 and len(queued) == 1
        skipped = next(n for n in rows if n.state is State.SKIPPED)
        assert skipped.reason == f"duplicate of #{queued[0].id}"
    assert [n.id for n in store.lease_due(T0, 1000)] == sorted(
        nid for r in results for nid, state in r if state == "queued"
    )
    store.close()


def test_sqlite_json_columns_hold_utf8_text(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    event = {"name": "García 🙂", "lone": "\ud800", "big": 2**70}
    (row,) = store.enqueue([new_notification("1", event=event, trigger={"file": "añejo.csv"})])
    store.close()
    conn = sqlite3.connect(tmp_path / "ledger.db")
    found = conn.execute(
        "SELECT fields, event, trigger, packed, sample FROM notifications JOIN packing "
        "USING (rule_id, rule_version)"
    ).fetchone()
    conn.close()
    # Packed (migration 0011): the JSON columns are empty, the stream holds UTF-8 JSON text.
    assert found[:3] == ("", "", "")
    spread = zlib.decompressobj(-12, found[4])
    text = (spread.decompress(found[3][1:]) + spread.flush()).decode()
    assert json.loads(text)[1:] == [event, {"file": "añejo.csv"}]
    again = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    kept = again.get(row.id)
    assert kept is not None and kept.event == event
    again.close()


def _lease_all(url: str, start: Any) -> list[int]:
    """In another process: wait for the start signal, then lease in small batches until none."""
    store = open_store(url)
    start.wait()
    leased: list[int] = []
    while batch := store.lease_due(T0, 5):
        leased += [n.id for n in batch]
    store.close()
    return leased


def test_two_processes_never_lease_a_row_twice(ledger_url: str) -> None:
    store = open_store(ledger_url)
    ids = [r.id for r in store.enqueue([new_notification(str(i)) for i in range(200)])]
    store.close()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(2) as pool:
            runs = [pool.apply_async(_lease_all, (ledger_url, start)) for _ in range(2)]
            start.set()
            first, second = (run.get(timeout=60) for run in runs)
    assert not set(first) & set(second)
    assert sorted(first + second) == ids


def test_whole_numbers_may_stand_for_times(store: Store) -> None:
    items = [
        new_notification("1", created_at=T0, within=900.5),
        new_notification("2", created_at=int(T0) + 1, within=900, valid_until=int(T0) + 60),
    ]
    first, second = (store.get(r.id) for r in store.enqueue(items))
    assert first and second
    assert (second.created_at, second.within, second.valid_until) == (T0 + 1, 900.0, T0 + 60)
    assert [n.id for n in store.lease_due(T0 + 2, 10)] == [first.id, second.id]
    store.requeue([(first.id, int(T0) + 5), (second.id, T0 + 5.5)], T0 + 2)
    assert store.next_due() == T0 + 5
