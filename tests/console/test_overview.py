"""The overview page through the console's app (no browser, a FakeClock), on every backend:
its counts are the ledger's over the span it names, old state changes show within FRESH_FOR,
the median to delivered is read at most once per FRESH_FOR."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger.base import AttemptResult, Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.console import overview
from nextstep.engine.runtime.console.app import console_routes
from nextstep.engine.runtime.console.counting import FRESH_FOR, HOUR, window_start
from nextstep.engine.runtime.console.host import ConsoleHost
from nextstep.engine.runtime.console.passwords import hash_password
from nextstep.engine.runtime.console.sessions import COOKIE, Signer
from tests.console.ledger import console_ledger
from tests.support.notifications import new_notification

SECRET = "s" * 40
NOW = 1_780_003_000.0  # 30 min 40 s into an hour
RULE = """\
rules:
  - id: loan-docs
    trigger: {http: {path: /events/loans}}
    to: "{{ event.phone }}"
    send: {channel: crm, body: {case: "{{ event.phone }}"}}
"""


@pytest.fixture
async def console(
    store: Store, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "loans.yaml").write_text(RULE)
    hashed = hash_password("pw", n=2**10)
    (tmp_path / "nextstep.yaml").write_text(
        "rules: rules/\n"
        "channels: {crm: {type: webhook, url: 'http://127.0.0.1:9/'}}\n"
        f"server:\n  console:\n    session_secret: {SECRET}\n"
        f'    users: [{{name: olga, role: operator, password_hash: "{hashed}"}}]\n'
    )
    config = load_config(tmp_path / "nextstep.yaml")
    assert config.server.console is not None
    runner = LedgerRunner(store)
    host = ConsoleHost(runner, console_ledger(store), clock, lambda: config)
    app = Starlette(routes=console_routes(host, config.server.console))
    _, cookie = Signer(SECRET).session("olga", "operator", NOW + 86400)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://console",
        cookies={COOKIE: cookie},
    ) as client:
        yield client
    runner.close(close_store=False)


async def _cells(client: httpx.AsyncClient, window: str) -> dict[str, str]:
    answer = await client.get(f"/ui/overview/live?window={window}")
    assert answer.status_code == 200, answer.text
    found = re.findall(r'data-state="(\w+)">(?:<a [^>]*>)?([^<]*)<', answer.text)
    return {state: text.strip() for state, text in found}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


async def test_counts_equal_the_ledgers_over_the_span_the_page_names(
    store: Store, console: httpx.AsyncClient, clock: FakeClock
) -> None:
    old = store.enqueue(
        [new_notification(created_at=NOW - 20 * HOUR + i) for i in range(3)]
        + [new_notification(created_at=NOW - 30 * HOUR)]  # before the day, in the week
        + [new_notification(created_at=NOW - 60)]
    )
    for window, total in (("hour", 1), ("day", 4), ("week", 5)):
        since = window_start(window, NOW)
        assert sum(store.counts(since=since).values()) == total
        assert (await _cells(console, window))["total"] == str(total), window
    answer = await console.get("/ui/overview?window=day")
    assert "since <time data-since>2026-05-27 22:00:00</time> UTC" in answer.text
    assert window_start("day", NOW) == 1_780_002_000.0 - 23 * HOUR

    store.cancel(old[0].id, NOW + 1)  # an old notification changes state
    clock.advance(2)
    assert (await _cells(console, "day"))["other"] == "0"  # its hour's counts are kept
    clock.advance(FRESH_FOR)
    assert (await _cells(console, "day"))["other"] == "1"


async def test_the_median_to_delivered_is_read_once_per_fresh_for(
    store: Store, console: httpx.AsyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overview, "CACHE_FOR", 0.0)
    ident = store.enqueue([new_notification(created_at=NOW - 100)])[0].id
    store.lease_due(NOW - 100, 10)
    store.record_attempts(
        [AttemptResult(ident, NOW - 99, State.SENT, {"kind": "accepted"}, provider_id="p1")]
    )
    with store.transaction() as tx:
        tx.set_states([(ident, State.SENT, State.DELIVERED)], NOW - 40)
        tx.add_history([(ident, NOW - 40, "ack", {"status": "delivered"})])
    assert "60.0 s" in (await console.get("/ui/overview/live?window=hour")).text
    with store.transaction() as tx:  # an earlier delivered ack, as if it came late
        tx.add_history([(ident, NOW - 70, "ack", {"status": "delivered"})])
    clock.advance(2)
    assert "60.0 s" in (await console.get("/ui/overview/live?window=hour")).text
    clock.advance(FRESH_FOR)
    assert "30.0 s" in (await console.get("/ui/overview/live?window=hour")).text
