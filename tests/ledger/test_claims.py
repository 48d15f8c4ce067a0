"""An idempotency key is claimed once across workers: the claim is a row of the ledger, and of
two writes claiming one key (two processes at once included) exactly one commits; the other
creates nothing (issue 10 section 3)."""

from __future__ import annotations

import threading

import pytest

from nextstep.engine.errors import ProgressClaimed
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Store
from nextstep.engine.model import Progress
from tests.support.notifications import new_notification

KEY = "http:/events:idem:k-1"


def test_a_second_claim_fails_and_keeps_nothing(store: Store) -> None:
    store.enqueue([new_notification("1")], [Progress(KEY, "first", claim=True)])
    with pytest.raises(ProgressClaimed):
        store.enqueue([new_notification("2")], [Progress(KEY, "second", claim=True)])
    assert store.get_progress(KEY) == "first"
    assert len(store.list()) == 1


def test_two_stores_claiming_at_once_one_wins(ledger_url: str) -> None:
    stores = [open_store(ledger_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def claim(store: Store, name: str) -> None:
        barrier.wait()
        try:
            store.enqueue([new_notification(name)], [Progress(KEY, name, claim=True)])
            outcomes.append("won")
        except ProgressClaimed:
            outcomes.append("lost")

    threads = [threading.Thread(target=claim, args=(s, str(i))) for i, s in enumerate(stores)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["lost", "won"]
        assert len(stores[0].list()) == 1
    finally:
        for s in stores:
            s.close()
