"""One event through one rule: does it match, to whom, with what text. Pure and fast.

:func:`evaluate` is called for every event and every rule of its source (the ingest benchmark
needs tens of thousands per second), so it only runs what was compiled at load: the ``when``
expressions, the recipient, the ``send`` templates, the keys and the send window.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nextstep.engine.errors import RenderError
from nextstep.engine.ledger.base import NewNotification
from nextstep.engine.model import Event, Message
from nextstep.engine.rules.expressions import CompiledTemplate, Scope
from nextstep.engine.rules.filters import COUNTRY_VARIABLE
from nextstep.engine.rules.phones import PhoneError, normalise_phone
from nextstep.engine.rules.rule import Rule, SendSpec
from nextstep.engine.rules.sendwindow import next_open

_UTC = datetime.UTC


@dataclass(frozen=True, slots=True)
class Skipped:
    """The rule does not apply to the event; ``reason`` says which condition did not hold."""

    rule_id: str
    reason: str


@lru_cache(maxsize=8)
def _moment(now: float) -> datetime.datetime:
    # A batch of events shares one `now`: make its datetime once.
    return datetime.datetime.fromtimestamp(now, _UTC)


@lru_cache(maxsize=1024)
def _skipped(rule_id: str, field: str, source: str) -> Skipped:
    # Immutable and the same for every event a condition turns away: made once.
    return Skipped(rule_id, f"{field} is false: {source}")


def scope(
    event: Event, *, now: float, default_country: str | None, extra: Mapping[str, Any] | None = None
) -> Scope:
    """The names templates see: ``event``, ``trigger``, ``now`` (and ``extra``, e.g. failure)."""
    variables = {
        "event": event.data,
        "trigger": event.trigger,
        "now": _moment(now),
        COUNTRY_VARIABLE: default_country,
    }
    if extra:
        variables.update(extra)
    return Scope(variables)


def evaluate(
    rule: Rule, event: Event, *, now: float, default_country: str | None
) -> NewNotification | Skipped:
    """The notification ``rule`` makes of ``event``, or why it does not apply.

    Raises RenderError (naming the rule and field) when the event cannot be rendered.
    """
    variables = scope(event, now=now, default_country=default_country)
    for condition in rule.when:
        if not condition.holds(variables):
            return _skipped(rule.id, condition.field, condition.source)
    spec = rule.send
    message = render_message(rule, spec, variables, default_country)
    policy = rule.policy
    # Positional, in NewNotification's field order: keywords cost a third of the whole call.
    return NewNotification(
        rule.id,
        rule.version,
        spec.channel,
        message.to,
        message.fields,
        event.data,
        now,
        None if rule.dedupe is None else _key(rule.dedupe, variables),
        None if policy.send_window is None else _not_before(rule, variables, now),
        None if policy.valid_for is None else now + policy.valid_for,
        policy.expect,
        policy.within,
        None if rule.supersedes is None else _key(rule.supersedes, variables),
        None,
        None,
        event.trigger,
        rule.optout.scopes(spec.channel),
    )


def render_send(
    rule: Rule,
    spec: SendSpec,
    event: Event,
    *,
    extra: Mapping[str, Any],
    default_country: str | None,
    now: float | None = None,
) -> Message:
    """Render one ``send:`` block (a fallback step's) for ``event``; ``extra`` adds names such
    as ``failure``. ``now`` defaults to ``extra["now"]`` (Unix seconds), else the current time."""
    moment = now if now is not None else extra.get("now")
    if not isinstance(moment, int | float):
        moment = time.time()
    names = {k: v for k, v in extra.items() if k != "now"}
    variables = scope(event, now=float(moment), default_country=default_country, extra=names)
    return render_message(rule, spec, variables, default_country)


def render_message(
    rule: Rule, spec: SendSpec, variables: Scope, default_country: str | None
) -> Message:
    """Render ``spec`` with prepared ``variables`` (see :func:`scope`).

    The recipient: a ``to`` text among the rendered fields (a mail address) wins, else the
    rule's ``to:`` as a phone number, else nothing. A channel that needs the phone gets it
    rendered first, so an unreachable number is the error reported.
    """
    phone = recipient(rule, variables, default_country) if spec.traits.needs_phone else None
    fields = spec.compiled.render(variables)
    to = fields.get("to")
    if isinstance(to, str):
        to = to.strip()
        if not to:
            raise RenderError(rule.id, f"{spec.path}.to", "the address is empty")
    elif phone is not None:
        to = phone
    else:
        to = recipient(rule, variables, default_country) if rule.to is not None else ""
    return Message(spec.channel, to, fields)


def recipient(rule: Rule, variables: Scope, default_country: str | None) -> str:
    """The rule's ``to`` rendered and normalised to international digits; RenderError if it is
    not a phone number that can be reached."""
    if rule.to is None:
        raise RenderError(rule.id, "to", "the rule has no to:")
    raw = rule.to.render(variables)
    try:
        return normalise_phone(raw, default_country)
    except PhoneError as exc:
        raise RenderError(rule.id, "to", str(exc)) from None


def _key(template: CompiledTemplate | None, variables: Scope) -> str | None:
    if template is None:
        return None
    key = template.render(variables)
    if not key.strip():
        raise RenderError(
            template.rule_id, template.field, "renders empty; a key must not be empty"
        )
    return key


def _not_before(rule: Rule, variables: Scope, now: float) -> float | None:
    window = rule.policy.send_window
    if window is None:
        return None
    tz = window.timezone_template.render(variables) if window.timezone_template else window.timezone
    try:
        opens = next_open(window.days, window.start, window.end, tz.strip(), now)
    except ValueError as exc:
        raise RenderError(rule.id, "policy.send_window.timezone", str(exc)) from None
    return None if opens <= now else opens
