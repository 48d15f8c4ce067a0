"""A ledger with real rules for status and policy tests: write a config, enqueue events, make
them "sent" as the dispatcher would, and read states and history back."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nextstep.adapters.channels.onemsg.acks import failure_of
from nextstep.engine.clock import FakeClock
from nextstep.engine.delivery.acks import record_acks
from nextstep.engine.delivery.fallbacks import PolicyContext, RuleBook
from nextstep.engine.delivery.timers import SettleReport, settle
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import AttemptResult, NewNotification, Notification, Store
from nextstep.engine.model import Ack, AckReport, Event, State
from nextstep.engine.rules.config import Config, load_config, rule_from_definition
from nextstep.engine.rules.render import evaluate

RULES = """
rules:
  - id: docs
    trigger: {http: {path: /events/loans}}
    to: "{{ event.phone }}"
    send:
      channel: whatsapp
      template: next_step
      namespace: ns1
      language: en
      text: "Hello, <<1>>! Next: <<2>>"
      params: {1: "{{ event.first_name | title }}", 2: "upload documents"}
    policy:
      retry: {attempts: 2, backoff: 30s, max_backoff: 5m}
      expect: delivered
      within: 15m
      fallback:
        - on: [failed, expired]
          send: {channel: whatsapp, template: next_step_short, namespace: ns1, language: en,
                 text: "<<1>>, your next step (after <<2>>)",
                 params: {1: "{{ event.first_name }}", 2: "{{ failure.status }}"}}
        - on: [failed]
          send: {channel: crm, body: {case: "{{ event.application_id }}",
                                      reason: "{{ failure.reason }}",
                                      class: "{{ failure.class }}"}}
        - on: [expired]
          send: {channel: mail, to: ops@example.com,
                 subject: "case {{ event.application_id }}: {{ failure.status }}",
                 body: "{{ failure.reason }}"}
  - id: windowed
    trigger: {http: {path: /events/loans}}
    to: "{{ event.phone }}"
    send:
      channel: whatsapp
      template: next_step
      namespace: ns1
      language: en
      text: "Hello, <<1>>!"
      params: {1: "{{ event.first_name }}"}
    policy:
      retry: {attempts: 3, backoff: 1m}
      valid_for: 3d
      send_window: {days: [mon-fri], hours: "09:00-18:00", timezone: "{{ event.tz }}"}
  - id: latest
    trigger: {http: {path: /events/loans}}
    to: "{{ event.phone }}"
    supersedes: "{{ event.application_id }}"
    send:
      channel: whatsapp
      template: next_step
      namespace: ns1
      language: en
      text: "Hello, <<1>>! Stage <<2>>"
      params: {1: "{{ event.first_name }}", 2: "{{ event.stage }}"}
"""


def write_config(
    folder: Path,
    *,
    onemsg_url: str = "http://127.0.0.1:9",
    crm_url: str = "http://127.0.0.1:9/crm",
    smtp_port: int = 9,
    rules: str = RULES,
    store: str = "sqlite:///ledger.db",
) -> Config:
    """Write ``nextstep.yaml`` and a rule file into ``folder`` and load them."""
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules" / "status.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    (folder / "nextstep.yaml").write_text(
        textwrap.dedent(
            f"""
            store: "{store}"
            rules: rules/
            default_country: ES
            server: {{listen: "127.0.0.1:0", webhook_secret: s3cret}}
            channels:
              whatsapp: {{type: 1msg, base_url: "{onemsg_url}", instance_id: inst1,
                          token: sandbox-token}}
              crm: {{type: webhook, url: "{crm_url}"}}
              mail: {{type: smtp, host: 127.0.0.1, port: {smtp_port},
                      from: nextstep@example.com}}
            """
        ),
        encoding="utf-8",
    )
    return load_config(folder / "nextstep.yaml")


def context_for(config: Config) -> PolicyContext:
    """The policy context the daemon would build for ``config``."""
    return PolicyContext(
        rules=RuleBook(lambda: config.rules, lambda d: rule_from_definition(d, config)),
        default_country=config.default_country,
        rng=random.Random(7),
    )


def person(n: int = 1, **extra: Any) -> dict[str, Any]:
    """An event for person ``n`` (distinct phone numbers)."""
    return {
        "first_name": "maria",
        "application_id": 1000 + n,
        "phone": f"+34 600 {n:06d}",
        "tz": "Europe/Madrid",
        "stage": "docs",
        **extra,
    }


@dataclass
class Ledger:
    """A file ledger, its rules, a fake clock and the policy context."""

    store: Store
    config: Config
    clock: FakeClock
    ctx: PolicyContext

    @classmethod
    def open(cls, folder: Path, clock: FakeClock, store: str | None = None, **urls: Any) -> Ledger:
        """A ledger (``store``, an empty one's URL; by default a new SQLite file in ``folder``)
        with the kit's rules written into ``folder``."""
        config = write_config(folder, store=store or "sqlite:///ledger.db", **urls)
        return cls(open_store(config.store), config, clock, context_for(config))

    def enqueue(self, data: Mapping[str, Any], rule: str = "docs", **changes: Any) -> int:
        """Evaluate ``data`` with ``rule`` and write the notification (with ``changes`` to its
        fields, e.g. an older ``rule_version``); its id."""
        item = evaluate(
            self.config.rules[rule],
            Event(data),
            now=self.clock.now(),
            default_country=self.config.default_country,
        )
        assert isinstance(item, NewNotification), item
        return self.store.enqueue([replace(item, **changes)])[0].id

    def record_sent(self, nid: int, provider_id: str) -> None:
        """Lease and record an accepted attempt, as the dispatcher does."""
        now = self.clock.now()
        leased = self.store.lease_due(now, 10, ids=[nid])
        assert [n.id for n in leased] == [nid]
        row = leased[0]
        self.store.record_attempts(
            [
                AttemptResult(
                    nid,
                    now,
                    State.SENT,
                    {"kind": "accepted", "provider_id": provider_id},
                    provider_id=provider_id,
                    attempt=row.attempts + 1,
                )
            ]
        )

    def record(self, nid: int, state: State, kind: str, **fields: Any) -> None:
        """Lease ``nid`` and record an attempt that ended in ``state`` (``kind`` outcome)."""
        now = self.clock.now()
        [row] = self.store.lease_due(now, 10, ids=[nid])
        outcome = {"kind": kind, **({"code": fields.pop("code")} if "code" in fields else {})}
        result = AttemptResult(nid, now, state, outcome, attempt=row.attempts + 1, **fields)
        self.store.record_attempts([result])

    def sent(self, data: Mapping[str, Any], provider_id: str, rule: str = "docs") -> int:
        """Enqueue and record as sent in one go."""
        nid = self.enqueue(data, rule)
        self.record_sent(nid, provider_id)
        return nid

    def acks(self, *acks: Ack) -> AckReport:
        """One webhook batch, each failed ack read as the 1MSG channel reads it."""
        read = [replace(a, failure=failure_of(a.status, a.error, a.code)) for a in acks]
        return record_acks(self.store, read, self.clock.now(), self.ctx)

    def settle(self, ids: list[int] | None = None) -> SettleReport:
        """One run of the policy loop (or the dispatcher's hook, with ``ids``)."""
        return settle(self.store, self.clock.now(), self.ctx, ids=ids)

    def get(self, nid: int) -> Notification:
        row = self.store.get(nid)
        assert row is not None
        return row

    def state(self, nid: int) -> State:
        return self.get(nid).state

    def children(self, nid: int) -> list[Notification]:
        """Fallbacks created for ``nid``."""
        return [n for n in self.store.list(limit=10_000) if n.parent_id == nid]

    def history_kinds(self, nid: int) -> list[str]:
        return [h.kind for h in self.store.history(nid)]

    def pending_acks(self) -> int:
        with self.store.transaction() as tx:
            return tx.kept_ack_count()
