"""Each trigger with the real rules, intake.emit and the SQLite ledger, as the daemon runs it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.model import State
from nextstep.engine.plugins import trigger_class
from nextstep.engine.runtime.server import create_app
from tests.support.waiting import until
from tests.triggers.databases import Table
from tests.triggers.loopback import serve
from tests.triggers.pipeline import pipeline, rule, write_config
from tests.triggers.test_csv_watch import drop_renamed
from tests.triggers.waiting import running

HEADER = "First Name;Application ID;Stage;Due Date;Phone\r\n"
ROWS = [
    "maria;101;docs_required;June 20;+34 600 111 222",
    "ana;102;approved;June 21;+34 600 111 223",  # skipped by the condition
    "bo;103;docs_required;June 22;not a phone",  # the rule cannot render it
    "cy;104;docs_required",  # a missing column
    "di;105;docs_required;June 23;600 111 225",
]
CONTENT = HEADER + "\r\n".join(ROWS) + "\r\n"


async def test_csv_rows_become_notifications(tmp_path: Path, clock: FakeClock) -> None:
    config = write_config(tmp_path, rule("docs", '{csv: {path: "inbox/*.csv"}}', dedupe=True))
    docs = config.rules["docs"]
    with pipeline(config, clock) as line:
        emit = line.emit("docs")
        trigger = trigger_class("csv")(docs.trigger_config, line.context("docs"))
        inbox = tmp_path / "inbox"
        async with running(trigger, emit):
            await until(lambda: clock.sleepers == 1)
            drop_renamed(inbox, "crm.csv", CONTENT)
            await until(lambda: trigger.status()["files"] == 1)  # type: ignore[attr-defined]
            drop_renamed(inbox, "again.csv", CONTENT)
            await until(lambda: trigger.status()["files"] == 2)  # type: ignore[attr-defined]
        rows = line.notifications()
        digest = hashlib.sha256(CONTENT.encode()).hexdigest()
        progress = line.runner.store.get_progress(f"csv:inbox/*.csv:{digest}")
    assert [(n.recipient, n.state) for n in rows] == [
        ("34600111222", State.QUEUED),
        ("34600111225", State.QUEUED),
    ]
    assert rows[0].fields["params"] == [
        "Maria",
        "loan application #101",
        "upload documents by June 20",
    ]
    assert progress == json.dumps({"row": 5, "done": True})
    errors = (inbox / "done" / "crm.csv.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[1].startswith("3;4;rule docs: to: 'not a phone' is not a phone number;bo;103")
    assert errors[2].startswith("4;5;missing column(s) due_date, phone")
    assert sorted(p.name for p in (inbox / "done").iterdir()) == [
        "again.csv",
        "crm.csv",
        "crm.csv.errors.csv",
    ]


async def test_http_events_through_the_daemon_app(tmp_path: Path, clock: FakeClock) -> None:
    config = write_config(
        tmp_path,
        rule("docs", "{http: {path: /events/loans}}"),
        rule("welcome", "{http: {path: /events/loans}}", when="event.stage == 'new'"),
    )
    with pipeline(config, clock) as line:
        emit = line.emit("docs", "welcome")
        factory = trigger_class("http")
        trigger = factory(config.rules["docs"].trigger_config, line.context("docs", "welcome"))
        routes = factory.routes({"/events/loans": trigger}, "tok")  # type: ignore[attr-defined]
        app = create_app(lambda: {"status": "ok"}, routes)
        body = [
            {
                "first_name": "maria",
                "application_id": 1,
                "stage": "docs_required",
                "due_date": "June 20",
                "phone": "+34 600 111 222",
            },
            {"first_name": "ana", "application_id": 2, "stage": "approved", "phone": "1"},
        ]
        headers = {"Authorization": "Bearer tok", "Idempotency-Key": "batch-1"}
        async with (
            running(trigger, emit),
            serve(app) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            first = await client.post("/events/loans?explain=1", json=body, headers=headers)
            again = await client.post("/events/loans", json=body, headers=headers)
            health = await client.get("/healthz")
        stored = line.runner.store.get_progress("http:/events/loans:idem:batch-1")
        count = len(line.notifications())
    assert first.status_code == 202 and health.status_code == 200
    answer = first.json()
    assert answer["events"] == 2 and len(answer["notifications"]) == 1
    assert [(e["event"], e["rule"], e["status"]) for e in answer["explain"]] == [
        (0, "docs", "queued"),
        (0, "welcome", "skipped"),
        (1, "docs", "skipped"),
        (1, "welcome", "skipped"),
    ]
    assert answer["explain"][1]["reason"] == "when is false: event.stage == 'new'"
    assert again.json() == answer and json.loads(stored or "{}")["answer"] == answer
    assert count == 1


def read_all(trigger: Any, clock: FakeClock, rows: int) -> bool:
    """The db_poll trigger has read ``rows`` rows and sleeps until its next poll."""
    return bool(trigger.status()["rows_read"] == rows and clock.sleepers == 1)


@pytest.mark.postgres
async def test_db_rows_become_notifications_and_the_cursor_is_kept(
    tmp_path: Path, clock: FakeClock, postgres_url: str
) -> None:
    table = Table(postgres_url)
    try:
        query = table.query().replace(
            "first_name, phone",
            "first_name, phone, "
            "'docs_required' AS stage, id AS application_id, "
            "'June 20' AS due_date",
        )
        trigger_block = json.dumps(
            {
                "db_poll": {
                    "url": postgres_url,
                    "query": query,
                    "cursor": "updated_at",
                    "id": "id",
                    "every": "5s",
                    "batch": 2,
                    "start": "beginning",
                }
            }
        )
        config = write_config(tmp_path, rule("docs", trigger_block))
        docs = config.rules["docs"]
        at = dt.datetime(2026, 5, 1, 9, 0)
        table.insert(
            (1, at, "maria", "+34600111222"),
            (2, at, "ana", "+34600111223"),
            (3, at, "bo", "+34600111224"),
        )
        with pipeline(config, clock) as line:
            for new_rows in (3, 1):  # the second run is a restart: it reads only the new row
                trigger = trigger_class("db_poll")(docs.trigger_config, line.context("docs"))
                async with running(trigger, line.emit("docs")):
                    await until(partial(read_all, trigger, clock, new_rows))
                if new_rows == 3:
                    table.insert((4, at, "cy", "+34600111225"))
            rows = line.notifications()
            key = f"db_poll:{docs.source_key}"
            cursor = json.loads(line.runner.store.get_progress(key) or "{}")
    finally:
        table.drop()
    assert [n.recipient for n in rows] == [
        "34600111222",
        "34600111223",
        "34600111224",
        "34600111225",
    ]
    assert rows[3].event["application_id"] == 4
    assert cursor == {"cursor": {"datetime": "2026-05-01T09:00:00"}, "id": 4}
