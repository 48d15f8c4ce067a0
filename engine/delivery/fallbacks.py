"""Carrying out a notification's end: retry after a failed ack, or a terminal state plus the
rule's fallback, written in the transaction that decided it.

Everything here runs inside one ``store.transaction()`` (its :class:`LedgerTransaction` is
passed in), on the ledger's thread. The decisions are :mod:`delivery.policy`'s; the fallback's
message is rendered by :func:`rules.render.render_send` with ``event`` and ``failure`` in scope.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nextstep.engine.backoff import Random, compute_backoff
from nextstep.engine.delivery.policy import (
    Failure,
    fallback_expectation,
    fallback_step,
    retries,
    window_time,
)
from nextstep.engine.errors import NextstepError
from nextstep.engine.ledger.base import LedgerTransaction, NewNotification, Notification
from nextstep.engine.metrics import FALLBACKS, NOTIFICATIONS
from nextstep.engine.model import Ack, Event, OutcomeKind, State
from nextstep.engine.rules.config import Config, rule_from_definition
from nextstep.engine.rules.render import render_send, scope
from nextstep.engine.rules.rule import Rule

log = logging.getLogger(__name__)


class RuleSource(Protocol):
    """Finds the rule (at the version) that created a notification."""

    def rule(self, tx: LedgerTransaction, rule_id: str, version: str) -> Rule | None: ...


@dataclass
class RuleBook:
    """Rules by id and version: the loaded ones first, then versions kept in the ledger.

    ``current`` returns the rules in force (it follows reloads); ``rebuild`` turns a kept
    definition back into a rule (``rules.config.rule_from_definition`` bound to the config).
    When a version can be found neither way, the rule in force with that id is used.
    """

    current: Callable[[], Mapping[str, Rule]]
    rebuild: Callable[[Mapping[str, Any]], Rule] | None = None
    _cache: dict[tuple[str, str], Rule] = field(default_factory=dict)

    def rule(self, tx: LedgerTransaction, rule_id: str, version: str) -> Rule | None:
        """The rule ``rule_id`` at ``version``, or the nearest thing to it; None if unknown."""
        live = self.current().get(rule_id)
        if live is not None and live.version == version:
            return live
        cached = self._cache.get((rule_id, version))
        if cached is not None:
            return cached
        definition = tx.get_rule_version(rule_id, version)
        if definition is not None and self.rebuild is not None:
            try:
                rebuilt = self.rebuild(definition)
            except NextstepError as exc:
                log.warning("rule %s version %s cannot be rebuilt: %s", rule_id, version, exc)
            else:
                self._cache[(rule_id, version)] = rebuilt
                return rebuilt
        return live


@dataclass(frozen=True)
class PolicyContext:
    """What carrying out policies needs besides the ledger: rules, the region for phone
    numbers of fallbacks, and a random source for retry jitter."""

    rules: RuleSource
    default_country: str | None = None
    rng: Random = field(default_factory=random.Random)


def policy_context(config: Config) -> PolicyContext:
    """The policy context of a one-shot command (``send``, ``ingest``) on a fixed config."""
    book = RuleBook(current=lambda: config.rules, rebuild=lambda d: rule_from_definition(d, config))
    return PolicyContext(rules=book, default_country=config.default_country)


def failed_ack(
    tx: LedgerTransaction, n: Notification, ack: Ack, *, now: float, ctx: PolicyContext
) -> State:
    """A ``failed`` ack for a ``sent`` notification: queued again when the rule retries this
    class of failure (the channel's reading, ``ack.failure``; recipient when it could not
    tell) and attempts are left (after the backoff, in the send window), else ``failed`` with
    its fallback. Returns the state written."""
    kind = ack.failure or OutcomeKind.RECIPIENT
    error, code = ack.error, ack.code
    reason = f"failed ack: {error}" if error else "failed ack"
    rule = ctx.rules.rule(tx, n.rule_id, n.rule_version)
    if rule is not None and retries(kind.value, n.attempts, rule.policy.retry):
        due = now + compute_backoff(n.attempts, rule.policy.retry, ctx.rng)
        due = window_opening(rule, n, due, now)
        if tx.retry_later(
            n.id, old=n.state, due=due, reason=reason, failure_class=kind.value, now=now
        ):
            detail = {"state": "queued", "reason": reason, "next_attempt_at": due}
            tx.add_history([(n.id, now, "state", detail)])
            return State.QUEUED
        return n.state
    failure = Failure("failed", reason, code, n.attempts, kind.value)
    finish(tx, n, State.FAILED, failure, now, ctx, rule=rule)
    return State.FAILED


def finish(
    tx: LedgerTransaction,
    n: Notification,
    new: State,
    failure: Failure,
    now: float,
    ctx: PolicyContext,
    *,
    rule: Rule | None = None,
) -> int | None:
    """Move ``n`` (still in ``n.state``) to ``new`` (failed or expired), mark it settled and
    create its fallback; returns the fallback's id. Nothing happens if ``n`` moved meanwhile."""
    if not tx.conclude(
        n.id,
        old=n.state,
        new=new,
        reason=failure.reason,
        failure_class=failure.failure_class,
        now=now,
    ):
        return None
    tx.add_history([(n.id, now, "state", {"state": new.value, "reason": failure.reason})])
    NOTIFICATIONS.labels(n.rule_id, new.value).inc()
    return start_fallback(tx, n, failure, now, ctx, rule=rule)


def settle(
    tx: LedgerTransaction, n: Notification, failure: Failure, now: float, ctx: PolicyContext
) -> int | None:
    """Decide the fallback of a notification another part already failed or expired (unless
    another settler claimed it first)."""
    if not tx.mark_settled(n.id, now):
        return None
    return start_fallback(tx, n, failure, now, ctx)


def start_fallback(
    tx: LedgerTransaction,
    n: Notification,
    failure: Failure,
    now: float,
    ctx: PolicyContext,
    *,
    rule: Rule | None = None,
) -> int | None:
    """Enqueue the fallback step that applies to ``failure`` (the next one after ``n``'s own
    step for a fallback); a step that cannot be rendered is noted and the next one tried."""
    rule = rule or ctx.rules.rule(tx, n.rule_id, n.rule_version)
    if rule is None:
        tx.add_history([(n.id, now, "note", {"fallback": "rule no longer known"})])
        return None
    steps = rule.policy.fallback
    index = fallback_step(steps, failure, after=n.fallback_step)
    while index is not None:
        try:
            item = _fallback_item(rule, n, index, failure, now, ctx)
        except NextstepError as exc:
            detail = {"fallback_step": index, "error": str(exc)}
            tx.add_history([(n.id, now, "note", detail)])
            index = fallback_step(steps, failure, after=index)
            continue
        child = tx.enqueue([item])[0].id
        detail = {"fallback_step": index, "child": child, "on": failure.status}
        tx.add_history([(n.id, now, "fallback", detail)])
        FALLBACKS.labels(n.rule_id, failure.status).inc()
        return child
    return None


def _fallback_item(
    rule: Rule, n: Notification, index: int, failure: Failure, now: float, ctx: PolicyContext
) -> NewNotification:
    spec = rule.policy.fallback[index].send
    event = Event(n.event, n.trigger)
    message = render_send(
        rule,
        spec,
        event,
        extra={"failure": failure.scope()},
        default_country=ctx.default_country,
        now=now,
    )
    expect, within = fallback_expectation(
        spec.traits.reports_delivery, expect=rule.policy.expect, within=rule.policy.within
    )
    valid_for = rule.policy.valid_for
    return NewNotification(
        rule_id=n.rule_id,
        rule_version=n.rule_version,
        channel=message.channel,
        recipient=message.to,
        fields=message.fields,
        event=n.event,
        created_at=now,
        not_before=window_opening(rule, n, now, now),
        valid_until=None if valid_for is None else now + valid_for,
        expect=expect,
        within=within,
        parent_id=n.id,
        fallback_step=index,
        trigger=n.trigger,
    )


def hold_for_window(tx: LedgerTransaction, n: Notification, now: float, ctx: PolicyContext) -> bool:
    """A retry the dispatcher scheduled into the rule's quiet hours waits for the window to
    open; True when it was moved."""
    rule = ctx.rules.rule(tx, n.rule_id, n.rule_version)
    if rule is None or rule.policy.send_window is None or n.next_attempt_at is None:
        return False
    due = window_opening(rule, n, n.next_attempt_at, now)
    if due <= n.next_attempt_at or not tx.reschedule(n.id, due):
        return False
    detail = {"next_attempt_at": due, "reason": "send window closed"}
    tx.add_history([(n.id, now, "note", detail)])
    return True


def window_opening(rule: Rule, n: Notification, at: float, now: float) -> float:
    """``at``, or the next opening of the rule's send window after it (the window's timezone
    rendered for ``n``'s event). A timezone that cannot be rendered leaves ``at`` as it is:
    the enqueue already reported it, and holding the message for ever would be worse."""
    window = rule.policy.send_window
    if window is None:
        return at
    timezone = window.timezone
    try:
        if window.timezone_template is not None:
            variables = scope(Event(n.event, n.trigger), now=now, default_country=None)
            timezone = window.timezone_template.render(variables).strip()
        return window_time(window, timezone, at)
    except (NextstepError, ValueError) as exc:
        log.warning("rule %s: send window not applied: %s", rule.id, exc)
        return at
