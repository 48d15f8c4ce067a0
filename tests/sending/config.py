"""A small configuration on disk for the ingest and ``nextstep send`` tests (the ``docs`` rule
sends the sandbox's built-in ``next_step`` template)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nextstep.engine.rules.config import Config, load_config

RULES = """
rules:
  - id: docs
    trigger: {http: {path: /events/loans}}
    when: event.stage == "docs_required"
    to: "{{ event.phone }}"
    dedupe: "{{ event.application_id }}:{{ event.stage }}"
    send:
      channel: whatsapp
      template: next_step
      namespace: 3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de
      language: en
      text: >-
        Hello, <<1>>! For your process "<<2>>", the next step is: <<3>>
        If you need help — we are here.
      params:
        1: "{{ event.first_name | title }}"
        2: "loan application"
        3: "upload documents"
    policy:
      retry: {attempts: 3, backoff: 1s, max_backoff: 2s}
  - id: welcome
    trigger: {http: {path: /events/loans}}
    to: "{{ event.phone }}"
    send:
      channel: whatsapp
      template: welcome
      namespace: ns1
      language: en
      text: "Welcome, <<1>>!"
      params: {1: "{{ event.first_name | title }}"}
"""


def write_config(
    folder: Path, *, onemsg_url: str = "http://127.0.0.1:9", rules: str = RULES
) -> Config:
    """Write ``nextstep.yaml`` (a 1MSG channel at ``onemsg_url``) and one rule file; load them."""
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules" / "loans.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    (folder / "nextstep.yaml").write_text(
        textwrap.dedent(
            f"""
            store: sqlite:///ledger.db
            rules: rules/
            default_country: ES
            channels:
              whatsapp: {{type: 1msg, base_url: "{onemsg_url}", instance_id: inst1,
                          token: sandbox-token, rate: 80/s}}
            """
        ),
        encoding="utf-8",
    )
    return load_config(folder / "nextstep.yaml")
