"""Work taken back from a gone worker: a marked row is in doubt, unless its rule says
``in_doubt: resend``, then it is queued again (docs/scaling.md, "Leases and takeover")."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nextstep.engine.clock import FakeClock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.leases import WorkerRecord
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.daemon import Daemon
from nextstep.engine.runtime.presence import Presence
from tests.support.notifications import new_notification

RULE = """\
rules:
  - id: {rule}
    trigger:
      http: {{path: /events/{rule}}}
    to: "{{{{ event.phone }}}}"
    send:
      channel: hook
      body: {{id: "{{{{ event.id }}}}"}}
    policy:
      retry: {{in_doubt: {in_doubt}}}
"""


async def test_a_gone_workers_marked_rows_follow_their_rules_in_doubt_policy(
    tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "nextstep.yaml").write_text(
        textwrap.dedent(
            """\
            store: sqlite:///ledger.db
            rules: rules/
            channels:
              hook: {type: webhook, url: "http://127.0.0.1:9/x"}
            """
        ),
        encoding="utf-8",
    )
    for rule, policy in (("hold-it", "hold"), ("resend-it", "resend")):
        text = RULE.format(rule=rule, in_doubt=policy)
        (tmp_path / "rules" / f"{rule}.yaml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "nextstep.yaml")
    runner = LedgerRunner(open_store(config.store))
    try:
        store = runner.store
        held, resent = (
            r.id
            for r in store.enqueue(
                [
                    new_notification("", rule_id="hold-it", channel="hook"),
                    new_notification("", rule_id="resend-it", channel="hook"),
                ]
            )
        )
        now = clock.now()
        store.heartbeat(WorkerRecord("gone", "elsewhere", 1, now - 99, now - 99, 30.0, {}))
        store.lease_due(now, 10, owner="gone", lease_until=now + 30)
        assert store.mark_sending([held, resent], now, owner="gone") == [held, resent]
        daemon = Daemon(config, clock)
        daemon.runner = runner
        presence = Presence(runner, clock, "me", 30.0, dict, daemon._recovered)
        await presence.beat()
        recovered = await presence.recover()
        assert recovered.in_doubt == [held, resent]
        assert store.get(held).state is State.IN_DOUBT  # type: ignore[union-attr]
        assert store.get(resent).state is State.QUEUED  # type: ignore[union-attr]
    finally:
        runner.close()
