"""Building configurations and rules for the rules tests: a temp folder with nextstep.yaml."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nextstep.engine.rules.config import Config, load_config
from nextstep.engine.rules.rule import Rule

CONFIG = """\
store: sqlite:///test.db
rules: rules/
default_country: ES
server: {listen: "127.0.0.1:0", event_token: test-event-token, webhook_secret: test-hook-secret}
channels:
  whatsapp: {type: 1msg, base_url: "http://127.0.0.1:9", instance_id: inst, token: secret-token}
  crm: {type: webhook, url: "http://127.0.0.1:9/hook"}
  mail: {type: smtp, host: 127.0.0.1, port: 2525, from: "n@example.test"}
"""

WHATSAPP_SEND = """\
    send:
      channel: whatsapp
      template: next_step
      namespace: ns
      language: en
      text: >-
        Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>
        If you need help — we are here.
      params:
        1: "{{ event.first_name | title }}"
        2: "{{ event.product | default('loan application', true) }}"
        3: "upload documents in your account by {{ event.due_date | date('%B %-d') }}"
"""


def write_config(root: Path, rules: str, *, config: str = CONFIG, name: str = "rules.yaml") -> Path:
    """nextstep.yaml plus one rule file (``rules`` is the YAML under ``rules:``) in ``root``."""
    (root / "rules").mkdir(exist_ok=True)
    (root / "rules" / name).write_text("rules:\n" + textwrap.dedent(rules), encoding="utf-8")
    path = root / "nextstep.yaml"
    path.write_text(config, encoding="utf-8")
    return path


def load(root: Path, rules: str, **kwargs: str) -> Config:
    """Load a configuration with the given rules."""
    return load_config(write_config(root, rules, **kwargs), env={})


def one_rule(root: Path, body: str, *, rule_id: str = "r") -> Rule:
    """One rule from the YAML of its keys after ``- id: r`` (indented by four spaces)."""
    text = f"  - id: {rule_id}\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return load(root, text).rules[rule_id]
