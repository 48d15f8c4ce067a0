"""The playground: one event (JSON, pasted or edited) through one rule, as ``nextstep render``
does it: which conditions hold, the message, the channel's exact request and a preview of
every fallback step. It never sends anything and writes nothing."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.delivery.policy import Failure
from nextstep.engine.errors import RenderError
from nextstep.engine.model import Event, Message
from nextstep.engine.plugins import channel_class
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.render import Skipped, evaluate, render_send, scope
from nextstep.engine.rules.rule import FallbackStep, Rule
from nextstep.engine.runtime.console.masking import MASKED, Masker
from nextstep.engine.runtime.console.sessions import Session
from nextstep.engine.runtime.console.web import PREFIX, Web

_ENDS = ("failed", "expired")


def parse_event(text: str) -> tuple[dict[str, Any] | None, str]:
    """The event object, or None and why it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if not isinstance(value, dict):
        return None, "the event must be a JSON object ({…})"
    return value, ""


def preview(config: Config, message: Message, masker: Masker) -> dict[str, Any]:
    """What the message's channel would send (never a secret)."""
    channel = config.channels[message.channel]
    try:
        shown = channel_class(channel.type).preview(message, channel.settings)
    except Exception as exc:  # a plug-in's preview failing must not break the page
        return {
            "target": f"no preview ({type(exc).__name__}: {exc})",
            "body": "",
            "text": None,
            "to": "",
        }
    text = message.fields.get("text")
    return {
        "target": f"{shown.target} ({channel.name}, {channel.type})",
        "body": masker.json(shown.body, message.to),
        "text": masker.text(str(text), message.to) if text is not None else None,
        "to": masker.phone(message.to),
    }


def conditions(rule: Rule, event: Event, now: float, country: str | None) -> list[Any]:
    """Each ``when`` condition and whether it holds for the event."""
    variables = scope(event, now=now, default_country=country)
    found = []
    for condition in rule.when:
        try:
            holds: bool | str = condition.holds(variables)
        except RenderError as exc:
            holds = exc.reason
        found.append({"source": condition.source, "holds": holds})
    return found


def example_failure(step: FallbackStep, rule: Rule) -> Failure:
    """A failure this step answers, to preview it with (``failure`` in its templates)."""
    status = next((s for s in _ENDS if s in step.on), "failed")
    kind = next((k for k in sorted(step.on) if k not in _ENDS), None)
    kind = kind or ("recipient" if status == "failed" else None)
    attempts = rule.policy.retry.attempts
    return Failure(status, f"(example) {kind or status}", None, attempts, kind)


def fallbacks(
    rule: Rule, event: Event, now: float, config: Config, masker: Masker
) -> list[dict[str, Any]]:
    """A preview of every fallback step, each with an example failure it answers."""
    found = []
    for index, step in enumerate(rule.policy.fallback):
        failure = example_failure(step, rule)
        doc: dict[str, Any] = {"index": index, "on": sorted(step.on), "failure": failure.scope()}
        try:
            message = render_send(
                rule,
                step.send,
                event,
                extra={"failure": failure.scope()},
                default_country=config.default_country,
                now=now,
            )
        except RenderError as exc:
            doc["error"] = f"{exc.field}: {exc.reason}"
        else:
            doc["preview"] = preview(config, message, masker)
        found.append(doc)
    return found


def run(rule: Rule, data: Mapping[str, Any], now: float, config: Config, masker: Masker) -> Any:
    """Everything the playground shows for one event."""
    event = Event(data, {"kind": rule.trigger_kind, "source": rule.source_key})
    shown: dict[str, Any] = {
        "conditions": conditions(rule, event, now, config.default_country),
        "fallbacks": fallbacks(rule, event, now, config, masker),
    }
    try:
        result = evaluate(rule, event, now=now, default_country=config.default_country)
    except RenderError as exc:
        return {**shown, "matches": None, "error": f"{exc.field}: {exc.reason}"}
    if isinstance(result, Skipped):
        return {**shown, "matches": False, "reason": result.reason}
    message = Message(result.channel, result.recipient, result.fields)
    return {
        **shown,
        "matches": True,
        "preview": preview(config, message, masker),
        "dedupe_key": result.dedupe_key,
    }


def _now(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)).timestamp()


class Playground:
    """``GET /ui/playground`` (the form) and ``POST`` (the result)."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def _page(self, session: Session, form: Mapping[str, str], **extra: Any) -> Response:
        config = self.web.host.config()
        rule_id = form.get("rule") or next(iter(sorted(config.rules)), "")
        rule = config.rules.get(rule_id)
        event = form.get("event")
        if event is None:
            first = rule.examples[0].event if rule is not None and rule.examples else {}
            event = json.dumps(first, indent=2, ensure_ascii=False, default=str)
        return self.web.render(
            "playground.html",
            session,
            rules=sorted(config.rules),
            rule_id=rule_id,
            event=event,
            now=form.get("now", ""),
            **extra,
        )

    async def form(self, request: Request, session: Session) -> Response:
        """The empty form (the chosen rule's first example as the event)."""
        return self._page(session, {"rule": request.query_params.get("rule", "")})

    async def evaluate(
        self, request: Request, session: Session, form: Mapping[str, str]
    ) -> Response:
        """The event through the rule."""
        config = self.web.host.config()
        rule = config.rules.get(form.get("rule", ""))
        if rule is None:
            return self._page(session, form, problem="Choose a rule.")
        data, problem = parse_event(form.get("event", ""))
        if data is None:
            return self._page(session, form, problem=f"The event is not valid JSON: {problem}")
        now = _now(form.get("now", "")) or self.web.host.clock.now()
        result = run(rule, data, now, config, MASKED)
        return self._page(session, form, result=result)

    def routes(self) -> list[BaseRoute]:
        """The playground's routes."""
        return [
            Route(f"{PREFIX}/playground", self.web.page(self.form), methods=["GET"]),
            Route(f"{PREFIX}/playground", self.web.action(self.evaluate), methods=["POST"]),
        ]
