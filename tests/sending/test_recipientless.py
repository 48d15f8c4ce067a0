"""Sends without a recipient (a webhook, a CRM task) are never spaced apart: the pair rate is
per recipient, and "no recipient" is nobody (issue 12, item 2)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.commands.ingest import run_ingest
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.rules.config import load_config
from nextstep.engine.sending.ratelimit import RecipientSpacing, channel_limits
from tests.sending.helpers import dispatcher, drive, enqueue
from tests.support.fake_channel import FakeChannel
from tests.support.notifications import new_notification
from tests.support.sandbox import running_receiver


@pytest.fixture
async def runner() -> AsyncIterator[LedgerRunner]:
    r = LedgerRunner(open_store("sqlite:///:memory:"))
    yield r
    r.close()


def test_an_empty_recipient_never_waits_for_a_slot() -> None:
    spacing = RecipientSpacing(6)
    assert [spacing.claim("", 100.0) for _ in range(5)] == [None] * 5
    assert spacing.claim("a", 100.0) is None and spacing.claim("a", 101.0) == 106.0


async def test_five_recipientless_sends_go_out_at_once_even_with_a_spacing_set(
    runner: LedgerRunner, clock: FakeClock
) -> None:
    limits = channel_limits("webhook", {"recipient_spacing": "6s"})
    assert limits.recipient_spacing == 6.0
    fake = FakeChannel(clock, name="crm")
    await enqueue(runner, *(new_notification("", channel="crm") for _ in range(5)))
    d = dispatcher(runner, clock, fake, limits=limits)
    start = clock.now()
    task = asyncio.create_task(d.run_until_idle())
    await drive(clock, runner, task.done, step=0.5)
    await task
    assert [s.at - start for s in fake.sends] == [0.0] * 5


async def test_ingest_sends_five_crm_notifications_without_waiting(tmp_path: Path) -> None:
    """The whole of ``nextstep ingest`` on a fake clock: a spacing would leave it asleep."""
    async with running_receiver() as crm:
        (tmp_path / "rules").mkdir()
        (tmp_path / "nextstep.yaml").write_text(
            textwrap.dedent(f"""\
                store: sqlite:///ledger.db
                rules: rules/
                channels:
                  crm: {{type: webhook, url: "{crm.url}", recipient_spacing: 6s}}
                """)
        )
        (tmp_path / "rules" / "r.yaml").write_text(
            textwrap.dedent("""\
                rules:
                  - id: crm-task
                    trigger: {csv: {path: "in/*.csv"}}
                    send: {channel: crm, body: {case: "{{ event.case }}"}}
                """)
        )
        (tmp_path / "cases.csv").write_text("case\n" + "".join(f"C-{i}\n" for i in range(5)))
        config = load_config(tmp_path / "nextstep.yaml")
        clock = FakeClock()
        start = clock.now()
        summary = await asyncio.wait_for(
            run_ingest(config, config.rules["crm-task"], tmp_path / "cases.csv", clock=clock),
            timeout=10,
        )
    assert summary.queued == 5
    assert sorted(b["case"] for b in crm.bodies) == [f"C-{i}" for i in range(5)]
    assert clock.now() == start  # nobody waited
