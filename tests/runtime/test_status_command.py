"""``nextstep status`` / ``release`` / ``cancel`` against a real SQLite ledger (a second
connection, as beside a running daemon)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextstep.engine.commands.cli import main
from nextstep.engine.ledger.base import Store
from nextstep.engine.ledger.sqlite import SqliteStore
from nextstep.engine.model import Progress, State
from nextstep.engine.runtime.server import HEALTH_KEY
from tests.support.notifications import new_notification


@pytest.fixture
def ledger(tmp_path: Path) -> tuple[str, Store]:
    path = tmp_path / "ledger.db"
    store = SqliteStore(str(path))
    now = time.time()
    store.enqueue(
        [
            new_notification("34600111222", dedupe_key="a:1", created_at=now - 10),
            new_notification("34600111333", dedupe_key="a:2", created_at=now - 5),
            new_notification("34600111444", rule_id="cases", dedupe_key="c:1", created_at=now),
        ]
    )
    store.lease_due(now, 1)  # the oldest is being sent…
    store.recover_interrupted(now)  # …when the process dies: in doubt
    return f"sqlite:///{path}", store


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_counts_by_rule_and_state_as_json(ledger: tuple[str, Store]) -> None:
    url, _ = ledger
    code, out = _invoke("status", "--store", url, "--since", "1h", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["counts"]["loan-docs"]["in_doubt"] == 1
    assert report["counts"]["loan-docs"]["queued"] == 1
    assert report["counts"]["loan-docs"]["total"] == 2
    assert report["counts"]["cases"]["queued"] == 1
    assert report["daemon"] is None


def test_one_notification_by_id_or_dedupe_key(ledger: tuple[str, Store]) -> None:
    url, _ = ledger
    code, out = _invoke("status", "1", "--store", url, "--json")
    assert code == 0, out
    (doc,) = json.loads(out)
    assert doc["state"] == "in_doubt"
    assert doc["recipient"] == "*******1222"
    assert [h["kind"] for h in doc["history"]][0] == "created"
    code, out = _invoke("status", "c:1", "--store", url)
    assert code == 0, out
    assert "rule cases" in out and "queued" in out
    code, out = _invoke("status", "nope", "--store", url)
    assert code == 1


def test_in_doubt_then_release_and_cancel(ledger: tuple[str, Store]) -> None:
    url, store = ledger
    code, out = _invoke("status", "--in-doubt", "--store", url)
    assert code == 0, out
    assert "*******1222" in out and "nextstep release ID" in out
    assert _invoke("release", "2", "--store", url)[0] == 1  # queued, not in doubt
    code, out = _invoke("release", "1", "--store", url)
    assert code == 0, out
    assert store.get(1) is not None and store.get(1).state is State.QUEUED  # type: ignore[union-attr]
    code, out = _invoke("cancel", "2", "--store", url, "--reason", "client called")
    assert code == 0, out
    cancelled = store.get(2)
    assert cancelled is not None and cancelled.state is State.CANCELLED
    assert _invoke("cancel", "99", "--store", url)[0] == 1


def test_daemon_health_snapshot_is_shown(ledger: tuple[str, Store]) -> None:
    url, store = ledger
    snapshot = {
        "status": "degraded",
        "pid": 42,
        "listen": "127.0.0.1:8787",
        "started_at": time.time(),
        "updated_at": time.time(),
        "triggers": [
            {
                "name": "csv:inbox",
                "kind": "csv",
                "state": "backoff",
                "restarts": 3,
                "last_error": "OSError: gone",
            }
        ],
        "circuits": {
            "whatsapp": {
                "state": "open",
                "cause": "account",
                "in_flight": 0,
                "in_flight_target": 450,
                "latency": 0.3,
            }
        },
        "reload": {"ok": False, "problems": ["rules/a.yaml:3:5: rule x: bad"]},
    }
    store.enqueue([], [Progress(HEALTH_KEY, json.dumps(snapshot))])
    code, out = _invoke("status", "--store", url)
    assert code == 0, out
    assert "daemon: degraded" in out
    assert "OSError: gone" in out
    assert "open" in out and "account" in out  # the circuit's state and class
    assert "450" in out and "300 ms" in out  # the in-flight target and the smoothed latency
    assert "rules/a.yaml:3:5: rule x: bad" in out


def test_a_rate_limit_pause_is_shown_with_its_time_left(ledger: tuple[str, Store]) -> None:
    # Issue 15.6: a paused channel looked like any closed circuit.
    url, store = ledger
    now = time.time()
    snapshot = {
        "status": "ok",
        "pid": 42,
        "listen": "127.0.0.1:8787",
        "started_at": now,
        "updated_at": now,
        "triggers": [],
        "circuits": {"whatsapp": {"state": "closed", "in_flight": 0, "paused_until": now + 300}},
        "reload": {"ok": True},
    }
    store.enqueue([], [Progress(HEALTH_KEY, json.dumps(snapshot))])
    code, out = _invoke("status", "--store", url)
    assert code == 0, out
    assert "(300s left)" in out
