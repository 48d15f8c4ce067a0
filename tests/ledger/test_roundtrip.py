"""Any text and any JSON-like value round-trips through the ledger; the runner serialises calls."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.ledger.sqlite_rows import dumps, loads
from tests.support.notifications import new_notification

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    s = open_store("sqlite:///:memory:")
    yield s
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(), value=_json)
def test_text_and_values_round_trip(store: Store, text: str, value: Any) -> None:
    nid = store.enqueue([new_notification(text or "x", event={"v": value, "t": text})])[0].id
    row = store.get(nid)
    assert row is not None
    assert row.recipient == (text or "x")
    assert row.event == {"v": value, "t": text}


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
