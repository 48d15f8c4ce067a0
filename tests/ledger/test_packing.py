"""Packed notifications (migration 0011): exact round trips, samples that keep no numbers, and
rows written before the migration still read the same everywhere they are read."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Store
from nextstep.engine.ledger.codec import dumps
from nextstep.engine.ledger.packing import document, pack, sample_of, unpack
from nextstep.engine.ledger.reads import Filters
from nextstep.engine.ledger.sqlite.store import STEPS, migrate
from tests.support.notifications import T0, new_notification

FIELDS = {"template": "t", "params": ["Ana", "#1"], "text": "Hi Ana, #1"}
EVENT = {"phone": "+34 612 345 678", "name": "Ana", "id": 1, "nested": {"x": [1, None, 2.5]}}
TRIGGER = {"kind": "csv", "file": "a.csv", "row": 7}


def test_a_packed_document_reads_back_exactly() -> None:
    sample = sample_of([(FIELDS, EVENT, TRIGGER)])
    other = {**EVENT, "phone": "+34 699 000 111", "name": "Luis"}
    packed = pack(document(FIELDS, other, TRIGGER), sample)
    assert unpack(packed, sample) == (FIELDS, other, TRIGGER)
    assert len(packed) < len(document(FIELDS, other, TRIGGER)) / 2


def _person(name: str, phone: str, loan: str) -> tuple[Any, Any, Any]:
    event = {
        "first_name": name.lower(),
        "phone": phone,
        "email": f"{name.lower()}@example.com",
        "loan": loan,
        "stage": "docs_required",
        "due": "June 20",
        "branch": "Calle Mayor 12345",
        "tags": ["vip", name],
    }
    fields = {
        "template": "next_step",
        "language": "en",
        "params": [name, f"loan #{loan}", "June 20"],
        "text": f"Hello, {name}! Loan #{loan}: upload documents by June 20",
    }
    return fields, event, {"kind": "csv", "file": "export.csv", "row": len(name)}


def test_a_sample_keeps_what_two_notifications_share_and_no_ones_own_data() -> None:
    sample = sample_of(
        [_person("Maria", "+34 612 345 678", "100234"), _person("Luis", "+34 699 000 111", "7")]
    ).decode()
    for own in ("maria", "Maria", "612", "100234", "vip"):
        assert own not in sample
    # What both share stays (it is what makes the next rows small), numbers of five digits
    # or more excepted: a shared one may still be someone's.
    for shared in ("docs_required", "June 20", "export.csv", "upload documents by", "next_step"):
        assert shared in sample
    assert "Calle Mayor 00000" in sample
    assert '"email":"@example.com"' in sample  # the end two different texts share
    assert '"first_name":""' in sample
    assert '"language":"en"' in sample  # a value under three characters is not taken out


def test_a_sample_from_one_notification_keeps_none_of_its_event() -> None:
    sample = sample_of([_person("Maria", "+34 612 345 678", "100234")]).decode()
    for own in ("maria", "Maria", "docs_required", "June 20", "Mayor"):
        assert own not in sample
    assert '"stage":""' in sample


def test_a_write_makes_the_sample_from_its_first_two_notifications(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        first, second = _person("Maria", "+34 612 345 678", "100234"), _person("Luis", "1", "7")
        store.enqueue(
            [
                new_notification(f"3460011122{i}", dedupe_key=f"k{i}", fields=f, event=e, trigger=t)
                for i, (f, e, t) in enumerate((first, second))
            ],
            [],
        )
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "l.db") as conn:
        (sample,) = conn.execute("SELECT sample FROM packing").fetchone()
    assert sample == sample_of([first, second])


def _old_row(url: str, nid: int) -> None:
    """A notification as a version before 0011 wrote it: JSON text columns, nothing packed."""
    values = (nid, dumps(FIELDS), dumps(EVENT), dumps(TRIGGER), T0)
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "INSERT INTO notifications (id, rule_id, rule_version, channel, recipient, "
                "fields, event, trigger, state, created_at, updated_at, next_attempt_at, "
                "dedupe_key) VALUES (?, 'old', 'v0', 'whatsapp', '34612345678', ?, ?, ?, "
                "'queued', ?, ?, ?, 'k-old')",
                (*values, T0, T0),
            )
            conn.execute(
                "INSERT INTO inbound_messages (channel, provider_id, sender, type, text, "
                "sent_at, received_at, quoted_id, reply_to) VALUES ('whatsapp', 'in-1', "
                "'34612345678', 'text', 'yes', ?, ?, 'p-old', ?)",
                (T0, T0, nid),
            )
        return
    with psycopg.connect(url) as pg:
        pg.execute(
            "INSERT INTO notifications (id, rule_id, rule_version, channel, recipient, fields, "
            "event, trigger, state, created_at, updated_at, next_attempt_at, dedupe_key) "
            "VALUES (%s, 'old', 'v0', 'whatsapp', '34612345678', %s, %s, %s, 'queued', %s, %s, "
            "%s, 'k-old')",
            (*values, T0, T0),
        )
        pg.execute(
            "INSERT INTO inbound_messages (channel, provider_id, sender, type, text, sent_at, "
            "received_at, quoted_id, reply_to) VALUES ('whatsapp', 'in-1', '34612345678', "
            "'text', 'yes', %s, %s, 'p-old', %s)",
            (T0, T0, nid),
        )
        pg.execute("SELECT setval('notifications_id_seq', %s)", (nid,))


def _same(found: Any) -> None:
    assert (found.fields, found.event, found.trigger) == (FIELDS, EVENT, TRIGGER)


def test_rows_from_before_the_migration_read_the_same(ledger_url: str, store: Store) -> None:
    _old_row(ledger_url, 1)
    (new,) = store.enqueue([new_notification(fields=FIELDS, event=EVENT, trigger=TRIGGER)])
    assert new.id == 2
    for nid in (1, 2):
        found = store.get(nid)
        assert found is not None
        _same(found)
    assert [n.id for n in store.find(dedupe_key="k-old")] == [1]
    _same(store.find(dedupe_key="k-old")[0])
    leased = store.lease_due(T0 + 1, 10)
    assert [n.id for n in leased] == [1, 2]
    for n in leased:
        _same(n)
    (reply,) = store.inbound_after(0)
    assert reply.reply_to is not None and reply.reply_to.event == EVENT
    shown = store.browse(Filters(dedupe_key="k-old"), None, 10)  # the console's list
    assert [n.id for n in shown] == [1]
    _same(shown[0])


def test_a_reply_reads_the_packed_event(ledger_url: str, store: Store) -> None:
    (new,) = store.enqueue([new_notification(fields=FIELDS, event=EVENT, trigger=TRIGGER)])
    if ledger_url.startswith("sqlite"):
        with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "INSERT INTO inbound_messages (channel, provider_id, sender, type, text, "
                "sent_at, received_at, reply_to) VALUES ('whatsapp', 'in-2', '1', 'text', "
                "'ok', ?, ?, ?)",
                (T0, T0, new.id),
            )
    else:
        with psycopg.connect(ledger_url) as pg:
            pg.execute(
                "INSERT INTO inbound_messages (channel, provider_id, sender, type, text, "
                "sent_at, received_at, reply_to) VALUES ('whatsapp', 'in-2', '1', 'text', "
                "'ok', %s, %s, %s)",
                (T0, T0, new.id),
            )
    (reply,) = store.inbound_after(0)
    assert reply.reply_to is not None and reply.reply_to.event == EVENT


def test_every_rule_version_packs_against_its_own_sample(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        first = store.enqueue(
            [
                new_notification(rule_id="a", event={"a": "1" * 9}, dedupe_key="1"),
                new_notification(rule_id="b", event={"b": "x"}, dedupe_key="1"),
                new_notification(rule_id="a", event={"a": "second"}, dedupe_key="2"),
            ]
        )
        later = store.enqueue([new_notification(rule_id="b", event={"b": "y"}, dedupe_key="2")])
        events = [store.get(r.id).event for r in (*first, *later)]  # type: ignore[union-attr]
        assert events == [{"a": "1" * 9}, {"b": "x"}, {"a": "second"}, {"b": "y"}]
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        samples = conn.execute("SELECT rule_id, sample FROM packing ORDER BY 1").fetchall()
    assert [rule for rule, _ in samples] == ["a", "b"]
    assert b"111111111" not in samples[0][1]


def test_a_ledger_from_before_0011_reads_the_same_after_it(tmp_path: Any) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, [step for step in STEPS if step[0] < "0011"])
    conn.execute(
        "INSERT INTO notifications (id, rule_id, rule_version, channel, recipient, fields, "
        "event, trigger, state, created_at, updated_at, next_attempt_at, dedupe_key) VALUES "
        "(1, 'old', 'v0', 'whatsapp', '34612345678', ?, ?, ?, 'queued', ?, ?, ?, 'k-old')",
        (dumps(FIELDS), dumps(EVENT), dumps(TRIGGER), T0, T0, T0),
    )
    conn.execute(
        "INSERT INTO history (notification_id, at, kind, detail) "
        "VALUES (1, ?, 'created', '{\"state\":\"queued\"}')",
        (T0,),
    )
    conn.close()
    store = open_store(f"sqlite:///{path}")  # applies 0011
    try:
        (new,) = store.enqueue([new_notification(dedupe_key="k-new", created_at=T0 + 1)])
        old = store.get(1)
        assert old is not None
        _same(old)
        assert [(h.kind, h.at, h.detail) for h in store.history(1)] == [
            ("created", T0, {"state": "queued"})
        ]
        assert [(h.kind, h.detail) for h in store.history(new.id)] == [
            ("created", {"state": "queued"})
        ]
        assert [n.id for n in store.find(dedupe_key="k-old")] == [1]
        shown = store.browse(Filters(phone_tail="2345678"), None, 10)
        assert [n.id for n in shown] == [1]
        assert [n.id for n in store.lease_due(T0 + 2, 10)] == [1, new.id]
    finally:
        store.close()
