"""The console's ledger reads (SQLite) and the pieces under the pages: passwords, sessions,
masking, the export, the config keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nextstep.engine.errors import ConfigError
from nextstep.engine.ledger.base import AttemptResult
from nextstep.engine.ledger.reads import Cursor, Decision, Filters, reason_kind
from nextstep.engine.ledger.sqlite import SqliteStore
from nextstep.engine.model import State
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.console.export import cell, row
from nextstep.engine.runtime.console.masking import MASKED, Masker
from nextstep.engine.runtime.console.overview import bars
from nextstep.engine.runtime.console.passwords import hash_password, verify_password
from nextstep.engine.runtime.console.sessions import Signer, same_token
from tests.support.notifications import T0, new_notification


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(str(tmp_path / "ledger.db"))


def _fill(store: SqliteStore) -> list[int]:
    items = [
        new_notification(f"3460011{i:04d}", dedupe_key=f"k{i}", created_at=T0 + i, rule_id=rule)
        for i, rule in enumerate(["a", "a", "b", "a", "b"])
    ]
    items.append(new_notification("34600119999", dedupe_key="k0", created_at=T0 + 9, rule_id="a"))
    return [e.id for e in store.enqueue(items)]


def test_overview_counts_states_trend_and_skip_reasons(store: SqliteStore) -> None:
    _fill(store)
    tallies = {t.rule_id: t for t in store.overview(["a", "c"], T0 - 1, T0 + 10, 11)}
    assert set(tallies) == {"a", "c"}  # b has no rule version kept and is not asked for
    a = tallies["a"]
    assert a.states == {"queued": 3, "skipped": 1}
    assert a.skipped == {"duplicate of #…": 1}
    assert sum(a.trend) == 4 and len(a.trend) == 11 and a.trend[-2] == 1
    assert tallies["c"].total == 0
    assert store.counts(since=T0 - 1)[("a", "queued")] == a.states["queued"]


def test_median_time_to_delivered_comes_from_the_first_delivered_ack(store: SqliteStore) -> None:
    ids = _fill(store)
    store.lease_due(T0 + 100, 10)
    store.record_attempts(
        [
            AttemptResult(i, T0 + 100, State.SENT, {"kind": "accepted"}, provider_id=f"p{i}")
            for i in ids[:5]
        ]
    )
    with store.transaction() as tx:
        tx.set_states([(ids[0], State.SENT, State.DELIVERED)], T0 + 30)
        tx.add_history([(ids[0], T0 + 30, "ack", {"status": "delivered"})])
    tally = next(t for t in store.overview(["a"], T0 - 1, T0 + 200, 4) if t.rule_id == "a")
    assert tally.to_delivered == pytest.approx(30.0)


def test_browse_filters_and_pages_by_key(store: SqliteStore) -> None:
    ids = _fill(store)
    page = store.browse(Filters(), None, 4)
    assert [n.id for n in page] == sorted(ids, reverse=True)[:4]
    rest = store.browse(Filters(), Cursor(page[-1].created_at, page[-1].id), 4)
    assert [n.id for n in rest] == sorted(ids, reverse=True)[4:]
    assert [n.id for n in store.browse(Filters(rule_id="b"), None, 10)] == [ids[4], ids[2]]
    assert [n.id for n in store.browse(Filters(phone_tail="110003"), None, 10)] == [ids[3]]
    assert store.browse(Filters(phone_tail="990003"), None, 10) == []
    assert [n.id for n in store.browse(Filters(dedupe_key="k0"), None, 10)] == [ids[5], ids[0]]
    assert [n.id for n in store.browse(Filters(state="skipped"), None, 10)] == [ids[5]]
    window = Filters(since=T0 + 1, until=T0 + 3)
    assert [n.id for n in store.browse(window, None, 10)] == [ids[2], ids[1]]
    assert Cursor.parse(Cursor(T0 + 0.5, 7).text()) == Cursor(T0 + 0.5, 7)
    assert Cursor.parse("nonsense") is None


def test_trace_follows_the_fallback_chain_both_ways(store: SqliteStore) -> None:
    parent = store.enqueue([new_notification(created_at=T0)])[0].id
    child = store.enqueue([new_notification(created_at=T0 + 1, parent_id=parent, fallback_step=0)])[
        0
    ].id
    with store.transaction() as tx:
        detail = {"fallback_step": 0, "child": child, "on": "failed"}
        tx.add_history([(parent, T0 + 1, "fallback", detail)])
    for ident in (parent, child):
        found = store.trace(ident)
        assert found is not None
        assert [r.id for r in found.chain] == [parent, child]
    assert store.trace(999) is None


def test_decisions_are_recorded_with_who_and_why(store: SqliteStore) -> None:
    ident = store.enqueue([new_notification()])[0].id
    store.lease_due(T0, 10)
    store.recover_interrupted(T0 + 1)
    assert [n.id for n in store.in_doubt(10)] == [ident]
    assert store.decide(ident, Decision("release", "olga", "not on the phone", T0 + 2))
    assert store.get(ident).state is State.QUEUED  # type: ignore[union-attr]
    assert not store.decide(ident, Decision("release", "olga", "again", T0 + 3))
    assert store.decide(ident, Decision("cancel", "olga", "client called", T0 + 4))
    notes = [dict(h.detail) for h in store.history(ident) if h.kind == "note"]
    assert notes == [
        {"decision": "release", "by": "olga", "reason": "not on the phone"},
        {"decision": "cancel", "by": "olga", "reason": "client called"},
    ]
    assert store.get(ident).reason == "client called"  # type: ignore[union-attr]


def test_passwords_and_sessions() -> None:
    hashed = hash_password("s3cret pass", n=2**10)
    assert verify_password("s3cret pass", hashed)
    assert not verify_password("s3cret pas", hashed)
    assert not verify_password("x", "scrypt$bad")
    signer = Signer("k" * 40)
    session, cookie = signer.session("olga", "operator", T0 + 60)
    assert signer.read_session(cookie, T0) == session
    assert signer.read_session(cookie, T0 + 61) is None  # over
    assert Signer("other" * 10).read_session(cookie, T0) is None  # forged
    assert signer.read_session(cookie[:-2] + "AA", T0) is None
    assert not any(c.isdigit() for c in session.csrf)
    assert same_token(session.csrf, session.csrf) and not same_token(None, session.csrf)


def test_masking_keeps_the_last_four_digits() -> None:
    assert MASKED.phone("34600111222") == "*******1222"
    assert MASKED.phone("ops@example.com") == "ops@example.com"
    text = MASKED.json({"phone": "+34 600 111 222", "due": "2026-06-20"}, "34600111222")
    assert "600 111 222" not in text and "2026-06-20" in text
    assert Masker(full=True).phone("34600111222") == "34600111222"
    assert reason_kind("duplicate of #12") == "duplicate of #…"


def test_export_cells_are_quoted_and_never_formulas() -> None:
    assert cell('say "hi"') == '"say ""hi"""'
    assert cell("=1+1") == '"\'=1+1"'
    assert row([1, None]) == '"1",""\r\n'
    assert [b.height for b in bars([0, 5, 10])] == [0.0, 10.0, 20.0]


def _config(tmp_path: Path, console: str) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    path = tmp_path / "nextstep.yaml"
    path.write_text(f"rules: rules/\nserver:\n  console:\n{textwrap.indent(console, '    ')}")
    return path


def test_console_config_is_read_and_checked(tmp_path: Path) -> None:
    hashed = hash_password("pw", n=2**10)
    good = f'users: [{{name: olga, role: operator, password_hash: "{hashed}"}}]\nrefresh: 5s\n'
    console = load_config(_config(tmp_path, good)).server.console
    assert console is not None and console.refresh == 5.0 and console.session_secret is None
    assert console.user("olga") is not None and console.user("nobody") is None
    bad = 'session_secret: short\nusers: [{name: olga, role: boss, password_hash: "x"}]\n'
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, bad))
    text = str(caught.value)
    assert "32 or more" in text and "boss" in text and "hash-password" in text
