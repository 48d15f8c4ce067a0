"""One notification's trace: the message as the client sees it, the exact payload, every
attempt with the provider's answer and its class, the status timeline, the fallback chain,
the event, and the rule version with a diff to the rule in force.

Operators see the whole phone number here (and only here); viewers see its last 4 digits.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from nextstep.engine.ledger.base import HistoryEntry, Notification
from nextstep.engine.ledger.reads import Trace
from nextstep.engine.model import Message
from nextstep.engine.plugins import TemplateButton, channel_class
from nextstep.engine.rules.config import Config
from nextstep.engine.runtime.console.masking import Masker

WEB = ("https://", "http://")


def payload(config: Config, n: Notification, masker: Masker) -> dict[str, Any]:
    """What the channel sends for this message (its own preview: never a secret)."""
    channel = config.channels.get(n.channel)
    if channel is None:
        return {"target": f"channel {n.channel} is no longer configured", "body": ""}
    try:
        preview = channel_class(channel.type).preview(
            Message(n.channel, n.recipient, n.fields), channel.settings
        )
    except Exception as exc:  # a plug-in's preview of an old row must not break the page
        return {"target": f"no preview ({type(exc).__name__}: {exc})", "body": ""}
    return {
        "target": f"{preview.target} ({channel.name}, {channel.type})",
        "body": masker.json(preview.body, n.recipient),
    }


def shown_buttons(buttons: Sequence[TemplateButton]) -> list[dict[str, str]]:
    """The template's buttons under the message; a link only to a web page (the provider's
    text never becomes a ``javascript:`` link on the operator's page)."""
    return [
        {"text": b.text, "url": b.url, "link": b.url if b.url.startswith(WEB) else ""}
        for b in buttons
    ]


def _summary(entry: HistoryEntry) -> str:
    d = entry.detail
    if entry.kind == "ack":
        parts = [str(d.get("status", "?"))]
        if d.get("code") is not None:
            parts.append(f"code {d['code']}")
        if d.get("error"):
            parts.append(str(d["error"]))
        return " · ".join(parts) + f" ({d.get('source', 'webhook')})"
    if entry.kind == "attempt":
        outcome = d.get("outcome") or {}
        extra = [f"code {outcome['code']}"] if outcome.get("code") is not None else []
        extra += [str(outcome["reason"])] if outcome.get("reason") else []
        said = f" ({'; '.join(extra)})" if extra else ""
        return (
            f"attempt {d.get('attempt', '?')}: {outcome.get('kind', '?')}{said} → {d.get('state')}"
        )
    if entry.kind == "state":
        reason = f": {d['reason']}" if d.get("reason") else ""
        return f"{d.get('state', '?')}{reason}"
    if entry.kind == "fallback":
        return f"fallback step {d.get('fallback_step')} on {d.get('on')}"
    if "decision" in d:
        return f"{d['decision']} by {d.get('by')}: {d.get('reason') or '(no reason)'}"
    return ", ".join(f"{k}: {v}" for k, v in d.items()) or entry.kind


def timeline(history: Sequence[HistoryEntry], n: Notification, masker: Masker) -> list[Any]:
    """Every history line, oldest first, with a one-line summary."""
    return [
        {
            "at": h.at,
            "kind": h.kind,
            "summary": masker.text(_summary(h), n.recipient),
            "child": h.detail.get("child") if h.kind == "fallback" else None,
            "failed": h.kind == "ack" and h.detail.get("status") == "failed",
        }
        for h in history
    ]


def attempts(history: Sequence[HistoryEntry], n: Notification, masker: Masker) -> list[Any]:
    """The send attempts with the provider's answer and the class it was given."""
    found = []
    for h in history:
        if h.kind != "attempt":
            continue
        outcome: Mapping[str, Any] = h.detail.get("outcome") or {}
        found.append(
            {
                "at": h.at,
                "number": h.detail.get("attempt"),
                "state": h.detail.get("state"),
                "kind": outcome.get("kind", "?"),
                "http_status": outcome.get("http_status"),
                "code": outcome.get("code"),
                "provider_id": outcome.get("provider_id"),
                "reason": masker.text(str(outcome.get("reason", "")), n.recipient),
                "answer": masker.text(str(outcome.get("answer", "")), n.recipient),
                "next_attempt_at": h.detail.get("next_attempt_at"),
            }
        )
    return found


def _yaml(definition: Mapping[str, Any] | None) -> list[str]:
    if definition is None:
        return []
    text = yaml.safe_dump(dict(definition), sort_keys=False, allow_unicode=True, width=90)
    return text.splitlines()


def rule_diff(
    stored: Mapping[str, Any] | None, config: Config, rule_id: str, version: str
) -> dict[str, Any]:
    """The rule version that made the notification and how the rule in force differs."""
    current = config.rules.get(rule_id)
    lines = list(
        difflib.unified_diff(
            _yaml(stored),
            _yaml(current.definition if current is not None else None),
            f"version {version}",
            f"in force ({current.version})" if current is not None else "no longer in force",
            lineterm="",
        )
    )
    kinds = []
    for text in lines:
        kind = "add" if text.startswith("+") else "del" if text.startswith("-") else "same"
        kinds.append({"text": text, "kind": "meta" if text.startswith(("+++", "---")) else kind})
    return {
        "version": version,
        "current": current.version if current is not None else None,
        "same": current is not None and current.version == version,
        "stored": "\n".join(_yaml(stored)),
        "diff": kinds,
    }


def context(
    found: Trace, config: Config, stored: Mapping[str, Any] | None, masker: Masker
) -> dict[str, Any]:
    """Everything the trace page shows."""
    n = found.notification
    text = n.fields.get("text")
    return {
        "n": n,
        "recipient": masker.phone(n.recipient),
        "message": masker.text(str(text), n.recipient) if text is not None else None,
        "fields": masker.json(n.fields, n.recipient),
        "payload": payload(config, n, masker),
        "attempts": attempts(found.history, n, masker),
        "timeline": timeline(found.history, n, masker),
        "chain": found.chain,
        "event": masker.json(n.event, n.recipient),
        "trigger": masker.json(n.trigger, n.recipient),
        "rule": rule_diff(stored, config, n.rule_id, n.rule_version),
        "reason": masker.text(n.reason, n.recipient),
    }
