"""What a loaded rule is: frozen values with every template and expression compiled.

Built from a rule's definition by :mod:`rules.compiler` (which reports problems) and loaded
for a whole configuration by :mod:`rules.config`. A rule's ``version`` is a hash of its
definition, so the ledger can keep each version and render retries and fallbacks with the
version that created them.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nextstep.engine.model import ALL_CHANNELS
from nextstep.engine.plugins import ChannelTraits, CompiledSend, Whitespace
from nextstep.engine.rules.expressions import CompiledExpression, CompiledTemplate

FailureClass = Literal["transient", "in_doubt", "recipient", "template", "account"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed send is tried again."""

    attempts: int = 4  # total send attempts, the first included
    backoff: float = 30.0  # seconds before the first retry; doubles, jitter, capped
    max_backoff: float = 900.0
    on: frozenset[str] = frozenset({"transient"})  # OutcomeKind values that retry
    in_doubt: str = "hold"  # hold | resend


@dataclass(frozen=True, slots=True)
class SendWindow:
    """When a notification may go out; outside it, it waits for the next opening."""

    days: frozenset[int]  # 0 = Monday
    start: datetime.time
    end: datetime.time  # END_OF_DAY for 24:00; end < start spans midnight
    timezone: str  # an IANA name, or a template rendered per event
    timezone_template: CompiledTemplate | None = field(default=None, compare=False)


@dataclass(frozen=True, eq=False, slots=True)
class SendSpec:
    """A compiled ``send:`` block: the channel's name and type, what the channel's plug-in
    compiled (``compiled.render(scope)`` gives the message's fields), the channel type's traits
    and where the block was written (``send``, ``policy.fallback[0].send``)."""

    channel: str
    channel_type: str
    compiled: CompiledSend
    traits: ChannelTraits = ChannelTraits()
    path: str = "send"


@dataclass(frozen=True, slots=True)
class FallbackStep:
    """A send made when the notification before it ends in one of ``on``."""

    on: frozenset[str]  # failed, expired, or OutcomeKind values (recipient, template…)
    send: SendSpec


@dataclass(frozen=True, slots=True)
class Policy:
    """What a rule expects of a notification and what happens when it does not get it."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    expect: str = "sent"  # sent | delivered | read
    within: float | None = None
    fallback: tuple[FallbackStep, ...] = ()
    send_window: SendWindow | None = None
    valid_for: float | None = None


@dataclass(frozen=True, slots=True)
class OptOutPolicy:
    """Which opt-outs stop a rule's messages. Each one always honours its own channel's and
    every-channel opt-outs; ``honours`` adds channels whose opt-outs stop every message of the
    rule (a text-message fallback honouring a STOP on the main channel); sends through an
    ``exempt`` channel are not messages to the recipient (a CRM task): no opt-out stops them."""

    honours: tuple[str, ...] = ()
    exempt: frozenset[str] = frozenset()

    def scopes(self, channel: str) -> tuple[str, ...] | None:
        """The opt-out channels that stop a message through ``channel`` (the ledger's
        ``NewNotification.optout``): None for the default, () for none."""
        if channel in self.exempt:
            return ()
        if not self.honours:
            return None
        return (channel, ALL_CHANNELS, *(h for h in self.honours if h != channel))


@dataclass(frozen=True, slots=True)
class Example:
    """One offline check of a rule, run by ``nextstep test``."""

    index: int
    line: int
    event: Mapping[str, Any]
    trigger: Mapping[str, Any]
    now: float | None
    expect: Literal["skip"] | Mapping[str, Any]
    description: str = ""
    failure: Mapping[str, Any] | None = None  # what fallbacks see as `failure` (rules.examples)


@dataclass(frozen=True, eq=False, slots=True)
class Rule:
    """A loaded rule: when (trigger + ``when``), to whom, what, and the policy."""

    id: str
    version: str
    description: str
    file: str
    line: int
    trigger_kind: str
    trigger_config: Mapping[str, Any]
    source_key: str
    send: SendSpec
    policy: Policy
    definition: Mapping[str, Any]
    examples: tuple[Example, ...] = ()
    when: tuple[CompiledExpression, ...] = ()
    to: CompiledTemplate | None = None
    dedupe: CompiledTemplate | None = None
    supersedes: CompiledTemplate | None = None
    whitespace: Whitespace = "normalise"
    optout: OptOutPolicy = OptOutPolicy()


def parse_examples(
    raw: Any, lines: Callable[[tuple[str | int, ...]], int]
) -> tuple[tuple[Example, ...], list[tuple[tuple[str | int, ...], str]]]:
    """The ``examples:`` of a rule (shapes already checked by the schema) and the problems of
    their ``now`` values; ``lines`` gives the line of a path inside the rule."""
    if not isinstance(raw, list):
        return (), []
    found: list[Example] = []
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, example in enumerate(raw):
        if not isinstance(example, Mapping) or not isinstance(example.get("event"), Mapping):
            continue
        expect, now, trigger = example.get("expect"), example.get("now"), example.get("trigger")
        if expect != "skip" and not isinstance(expect, Mapping):
            continue
        moment = None
        if isinstance(now, str):
            try:
                parsed = datetime.datetime.fromisoformat(now)
            except ValueError:
                problems.append((("examples", i, "now"), f"{now!r} is not an ISO date-time"))
                continue
            moment = (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()
        found.append(
            Example(
                index=i,
                line=lines(("examples", i)),
                event=example["event"],
                trigger=trigger if isinstance(trigger, Mapping) else {},
                now=moment,
                expect="skip" if expect == "skip" else expect,
                description=str(example.get("description", "")),
                failure=example["failure"] if isinstance(example.get("failure"), Mapping) else None,
            )
        )
    return tuple(found), problems


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8: the same data always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def version_of(definition: Mapping[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the definition's canonical JSON."""
    return hashlib.sha256(canonical_json(definition).encode()).hexdigest()[:12]
