"""A provider's request to stop sending for a while (a 429's ``Retry-After``, Meta's
throughput codes), bounded: one answer saying ``Retry-After: 100000`` must not stop a channel
for a day without a word (issue 15.6).

The channel's ``max_pause`` (5 min by default) caps both the channel-wide pause and the wait
before the notification's own retry; the start of every pause is logged once, with the channel
and how long, and the pause's end is a gauge (``nextstep_channel_paused_until_seconds``) and
part of the channel's health (``paused_until``).
"""

from __future__ import annotations

import dataclasses
import logging

from nextstep.engine.metrics import CHANNEL_PAUSED_UNTIL
from nextstep.engine.model import Outcome
from nextstep.engine.sending.ratelimit import DEFAULT_MAX_PAUSE, RateLimiter

log = logging.getLogger("nextstep.engine.sending.dispatcher")  # lanes log as the dispatcher

__all__ = ["DEFAULT_MAX_PAUSE", "capped", "pause_channel"]


def capped(outcome: Outcome, limit: float) -> Outcome:
    """``outcome`` with its ``pause`` and ``retry_after`` cut to ``limit`` seconds."""
    pause, retry_after = outcome.pause, outcome.retry_after
    if (pause is None or pause <= limit) and (retry_after is None or retry_after <= limit):
        return outcome
    return dataclasses.replace(
        outcome,
        pause=None if pause is None else min(pause, limit),
        retry_after=None if retry_after is None else min(retry_after, limit),
    )


def pause_channel(
    channel: str, limiter: RateLimiter, asked: Outcome, limit: float, now: float
) -> None:
    """Pause ``channel`` as ``asked`` (an outcome with ``pause``), at most ``limit`` seconds;
    a pause that starts (rather than extends one under way) is logged."""
    if asked.pause is None:
        return
    seconds = min(asked.pause, limit)
    running = limiter.paused_until
    until = now + seconds
    if running is not None and running >= until:
        return
    limiter.pause_until(until)
    CHANNEL_PAUSED_UNTIL.labels(channel).set(until)
    if running is None or running <= now:
        cut = f" (the provider asked for {asked.pause:g}s; max_pause is {limit:g}s)"
        log.warning(
            "channel %s paused for %gs: the provider is rate limiting%s",
            channel,
            seconds,
            cut if asked.pause > limit else "",
        )
