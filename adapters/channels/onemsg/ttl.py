"""A rule's ``valid_for`` as the provider's message time-to-live, ``messageSendTtlSeconds``
(pure).

1MSG's ``sendTemplate`` takes ``messageSendTtlSeconds``: how long Meta keeps trying to deliver
the message. Its range depends on the template's category (official SDK, Meta's TTL page):
authentication 30–900 s, utility 30–43,200 s (12 h), marketing 43,200–2,592,000 s (12 h to 30
days, honoured only when the send goes through Marketing Messages Lite); authentication and
utility also take -1, a 30-day TTL. Without one, Meta keeps a message 30 days (authentication:
10 minutes).

How nextstep uses it, so that a next step that went stale is not delivered late by the
provider either:

* a rule whose ``valid_for`` is under 30 s cannot be expressed at all: ``validate`` refuses it
  (:func:`offline_problem`); one of 30 days or more needs no TTL (no category's default is
  longer), so none is sent; -1 is never sent;
* otherwise the rule's TTL is ``valid_for`` in whole seconds (:func:`rule_ttl`), what
  ``nextstep render`` shows; ``templates --check`` reports a TTL outside the range of the
  template's category (:func:`category_problem`);
* each send attempt sends the time left until the notification's ``valid_until`` (rounded up to
  a second, never more than the rule's TTL), kept within the category's range
  (:func:`attempt_ttl`): a retry close to ``valid_until`` sends the category's minimum, so the
  provider may deliver it up to that much late (30 s for utility and authentication). A
  template whose category is not known gets no TTL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

MIN_TTL = 30
"""The shortest TTL any category takes (seconds)."""

NO_TTL_FROM = 2_592_000
"""30 days: no category keeps a message longer, so a ``valid_for`` this long needs no TTL."""

RANGES: Mapping[str, tuple[int, int]] = {
    "AUTHENTICATION": (30, 900),
    "UTILITY": (30, 43_200),
    "MARKETING": (43_200, 2_592_000),
}
"""The TTL each template category takes, in seconds (both ends included)."""


def rule_ttl(valid_for: float | None) -> int | None:
    """The TTL a rule asks for: ``valid_for`` in whole seconds; None without ``valid_for`` or
    from 30 days on (nothing to send)."""
    if valid_for is None or valid_for >= NO_TTL_FROM:
        return None
    return max(MIN_TTL, int(valid_for))


def offline_problem(valid_for: float | None) -> str | None:
    """What ``validate`` says of a ``valid_for`` whatever the template's category, or None."""
    if valid_for is not None and valid_for < MIN_TTL:
        return (
            f"policy.valid_for is {_show(valid_for)}: WhatsApp's shortest message TTL "
            f"(messageSendTtlSeconds) is {MIN_TTL}s, so the provider could deliver it late; "
            f"use at least {MIN_TTL}s"
        )
    return None


def category_problem(ttl: int, category: str) -> str | None:
    """What ``templates --check`` says of a rule's TTL for a template of ``category``: None
    when it fits (or the category takes no TTL nextstep knows of)."""
    bounds = RANGES.get(category.upper())
    if bounds is None:
        return None
    low, high = bounds
    if low <= ttl <= high:
        return None
    what = "longer than" if ttl > high else "shorter than"
    end = high if ttl > high else low
    consequence = (
        "an undelivered message is dropped after that, before valid_for ends"
        if ttl > high
        else "the provider may deliver it that much after valid_for"
    )
    kind = category.lower()
    article = "an" if kind.startswith(("a", "e", "i", "o")) else "a"  # a utility…
    return (
        f"policy.valid_for ({_show(ttl)}) is {what} {article} {kind} template's message "
        f"TTL allows ({_show(low)}–{_show(high)}): {_show(end)} is sent, and {consequence}"
    )


def attempt_ttl(ttl: int, seconds_left: float | None, category: str | None) -> int | None:
    """``messageSendTtlSeconds`` for one send attempt: the time left (up to the rule's TTL)
    within the range of the template's category; None when the category is unknown."""
    bounds = RANGES.get((category or "").upper())
    if bounds is None:
        return None
    wanted = ttl if seconds_left is None else min(ttl, math.ceil(seconds_left))
    low, high = bounds
    return min(max(wanted, low), high)


def _show(seconds: float) -> str:
    """``43200`` → ``12h``, ``90`` → ``90s``: whole units only."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
