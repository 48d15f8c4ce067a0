"""The real pipeline for trigger tests: a config folder with rules, the SQLite ledger, and the
Emit of nextstep.engine.intake.emit, as the daemon wires them."""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nextstep.engine.clock import Clock
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.plugins import Emit, TriggerContext
from nextstep.engine.rules.config import Config, load_config

# The sandbox's built-in approved template (adapters/channels/onemsg/sandbox/templates.py).
SEND = """
    send:
      channel: whatsapp
      template: next_step
      namespace: 3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de
      language: en
      text: 'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>> TAIL'
      params:
        1: "{{ event.first_name | title }}"
        2: "loan application #{{ event.application_id }}"
        3: "upload documents by {{ event.due_date }}"
"""


SEND = SEND.replace("TAIL", "If you need help — we are here.")


def rule(
    rule_id: str,
    trigger: str,
    *,
    when: str = 'event.stage == "docs_required"',
    dedupe: bool = False,
) -> str:
    """One rule (YAML) on ``trigger`` (a flow mapping such as ``{csv: {path: "in/*.csv"}}``)."""
    lines = [
        f"  - id: {rule_id}",
        f"    trigger: {trigger}",
        f"    when: {json.dumps(when)}",
        '    to: "{{ event.phone }}"',
    ]
    if dedupe:
        lines.append('    dedupe: "{{ event.application_id }}"')
    return "\n".join(lines) + textwrap.indent(textwrap.dedent(SEND), "    ")


def write_config(
    folder: Path, *rules: str, onemsg_url: str = "http://127.0.0.1:9", token: str = "t1"
) -> Config:
    """``nextstep.yaml`` (SQLite ledger in ``folder``, one 1MSG channel) and the rules."""
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules" / "rules.yaml").write_text("rules:\n" + "\n".join(rules), encoding="utf-8")
    (folder / "nextstep.yaml").write_text(
        "store: sqlite:///ledger.db\nrules: rules/\ndefault_country: ES\nchannels:\n"
        f'  whatsapp: {{type: 1msg, base_url: "{onemsg_url}", instance_id: i1, token: {token}}}\n',
        encoding="utf-8",
    )
    return load_config(folder / "nextstep.yaml")


@dataclass
class Pipeline:
    """The loaded config, the ledger and how to build a trigger of one source with its emit."""

    config: Config
    runner: LedgerRunner
    clock: Clock

    def emit(self, *rule_ids: str) -> Emit:
        """The engine's Emit for these rules (one source)."""
        rules = [self.config.rules[r] for r in rule_ids]
        return make_emit(self.runner, rules, self.clock, self.config.default_country)

    def context(self, *rule_ids: str) -> TriggerContext:
        return TriggerContext(self.runner.store, self.clock, str(self.config.base_dir), rule_ids)

    def notifications(self) -> list[Any]:
        """Every ledger row, oldest first."""
        return sorted(self.runner.store.list(limit=1_000_000), key=lambda n: n.id)


@contextlib.contextmanager
def pipeline(config: Config, clock: Clock) -> Iterator[Pipeline]:
    """Open the config's ledger for the block."""
    runner = LedgerRunner(open_store(config.store))
    try:
        yield Pipeline(config, runner, clock)
    finally:
        runner.close()
