"""Any text and any JSON-like value round-trips through the ledger; the runner serialises calls."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import itertools
import threading
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.ledger.codec import dumps, loads
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import Progress, State
from tests.support.notifications import new_notification

_EXAMPLES = itertools.count()
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=st.text(), value=_json)
@example(text="a\x00b\uffff0\uffff\uffff\x00", value="\x00\uffff")  # NUL and PostgreSQL's escape
def test_text_and_values_round_trip(store: Store, text: str, value: Any) -> None:
    # Text goes through every kind of column: plain (recipient, keys, reason, provider id,
    # progress) and JSON (event, history detail); NUL and U+FFFF included.
    key = f"{next(_EXAMPLES)}:{text}"  # the store is shared by the examples
    item = new_notification(
        text or "x", event={"v": value, "t": text}, dedupe_key=key, supersede_key=text
    )
    nid = store.enqueue([item], [Progress(key, text)])[0].id
    row = store.get(nid)
    assert row is not None
    assert (row.recipient, row.dedupe_key, row.supersede_key) == (text or "x", key, text)
    assert row.event == {"v": value, "t": text}
    assert store.get_progress(key) == text
    assert [n.id for n in store.find(dedupe_key=key)] == [nid]
    assert [n.id for n in store.lease_due(row.next_attempt_at or 0.0, 1, ids=[nid])] == [nid]
    store.record_attempts(
        [AttemptResult(nid, 1.0, State.FAILED, {"why": text}, provider_id=key, reason=text)]
    )
    failed = store.get(nid)
    assert failed is not None and (failed.provider_id, failed.reason) == (key, text)
    assert store.history(nid)[-1].detail["outcome"] == {"why": text}
    assert [n.id for n in store.find(provider_id=key)] == [nid]


def test_values_json_cannot_hold_are_kept_as_text() -> None:
    doc = {"d": datetime.date(2026, 6, 20), "n": decimal.Decimal("1.50"), "big": 2**70}
    assert loads(dumps(doc)) == {"d": "2026-06-20", "n": "1.50", "big": 2**70}
    assert loads(dumps({"s": "\ud800"})) == {"s": "\ud800"}


async def test_runner_runs_calls_in_order_on_one_thread() -> None:
    store = open_store("sqlite:///:memory:")
    runner = LedgerRunner(store)
    threads: set[int] = set()

    def enqueue(i: int) -> int:
        threads.add(threading.get_ident())
        return store.enqueue([new_notification(str(i))])[0].id

    ids = await asyncio.gather(*(runner.call(enqueue, i) for i in range(20)))
    assert ids == sorted(ids)
    assert len(threads) == 1 and threading.get_ident() not in threads
    runner.close()


async def test_settled_returns_once_the_calls_on_the_thread_have_finished() -> None:
    runner = LedgerRunner(open_store("sqlite:///:memory:"))
    gate, started = threading.Event(), threading.Event()

    def held() -> bool:
        started.set()
        return gate.wait(30)

    try:
        await runner.settled()  # nothing running: at once
        call = asyncio.ensure_future(runner.call(held))
        await asyncio.to_thread(started.wait, 30)  # the call is on the ledger thread
        settled = asyncio.ensure_future(runner.settled())
        done, _ = await asyncio.wait({settled}, timeout=0.05)  # a while: it must not return
        assert not done and runner.pending == 1
        gate.set()
        await settled
        assert await call is True
        assert runner.pending == 0
    finally:
        gate.set()
        runner.close()
