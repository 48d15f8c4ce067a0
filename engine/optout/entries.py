"""Opt-outs as operators and CRMs write them: a phone number read like a rule's ``to:``, a
channel of nextstep.yaml or every channel; and adding or removing them with their metrics.

The store calls are synchronous (the daemon runs them on the ledger thread, the CLI directly).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from nextstep.engine.ledger.base import OptOut, OptOutResult, Store
from nextstep.engine.metrics import OPTED_OUT, OPTOUTS
from nextstep.engine.model import ALL_CHANNELS
from nextstep.engine.rules.phones import PhoneError, normalise_phone

EVERY = ("", ALL_CHANNELS, "all")  # how "every channel" may be written
HOWS = ("keyword", "cli", "api", "import")


class EntryError(ValueError):
    """A number or channel that cannot be an opt-out; the message says why."""


@dataclass(frozen=True, slots=True)
class Directory:
    """What reading an entry needs: the region of numbers without a country code and the
    channel names of nextstep.yaml."""

    default_country: str | None
    channels: Collection[str]

    def recipient(self, raw: object) -> str:
        """International digits of a phone number written any way ``to:`` accepts."""
        text = "" if raw is None else str(raw).strip()
        if not text:
            raise EntryError("the phone number is empty")
        try:
            return normalise_phone(text, self.default_country)
        except PhoneError as exc:
            raise EntryError(str(exc)) from None

    def channel(self, raw: object) -> str:
        """A channel name of nextstep.yaml, or ALL_CHANNELS for "", "*" or "all" (unless a
        channel is named all)."""
        text = "" if raw is None else str(raw).strip()
        if text in self.channels:
            return text
        if text in EVERY:
            return ALL_CHANNELS
        known = ", ".join(sorted(self.channels)) or "none"
        raise EntryError(f"unknown channel {text!r} (nextstep.yaml has: {known}; * for every one)")


def add(store: Store, entries: Sequence[OptOut]) -> OptOutResult:
    """Keep opt-outs (skipping what is queued for them) and count them."""
    result = store.add_optouts(entries)
    count_added(entries, result)
    return result


def count_added(entries: Sequence[OptOut], result: OptOutResult) -> None:
    """The metrics of opt-outs added: by how (the first entry's; one call, one source) and the
    notifications they skipped, by rule."""
    if result.added and entries:
        OPTOUTS.labels("added", entries[0].how).inc(result.added)
    for _, rule_id in result.skipped:
        OPTED_OUT.labels(rule_id).inc()


def remove(store: Store, recipient: str, channel: str | None, how: str) -> int:
    """Remove one recipient's opt-out of ``channel`` (None: every opt-out it has); counted."""
    if channel is None:
        keys = [(o.recipient, o.channel) for o in store.optouts(recipients=[recipient])]
    else:
        keys = [(recipient, channel)]
    removed = store.remove_optouts(keys) if keys else 0
    if removed:
        OPTOUTS.labels("removed", how).inc(removed)
    return removed


def describe(channel: str) -> str:
    """ "every channel" or "channel <name>", for messages."""
    return "every channel" if channel == ALL_CHANNELS else f"channel {channel}"
