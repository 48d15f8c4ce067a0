"""What every backend shares about opt-outs: which opt-outs stop a notification, how that is
kept in its ``optout_scopes`` column, and the history line of a notification they skipped."""

from __future__ import annotations

from typing import Any

from nextstep.engine.ledger.base import OPTED_OUT, NewNotification, OptOut
from nextstep.engine.model import ALL_CHANNELS, State


def scopes_text(scopes: tuple[str, ...] | None) -> str | None:
    """The ``optout_scopes`` column: ``,a,b,`` for the opt-out channels that stop the
    notification, NULL for the default (its own channel and every-channel), '' for none."""
    if scopes is None:
        return None
    return "".join(f",{scope}" for scope in scopes) + "," if scopes else ""


def stops(item: NewNotification, optout_channel: str) -> bool:
    """Whether an opt-out of ``optout_channel`` (a channel name or ALL_CHANNELS) stops
    ``item`` (the SQL of both backends says the same of a row)."""
    if item.optout is None:
        return optout_channel in (ALL_CHANNELS, item.channel)
    return optout_channel in item.optout


def detail(optout: OptOut) -> dict[str, Any]:
    """The history detail of a notification an opt-out skipped."""
    return {
        "state": State.SKIPPED.value,
        "reason": OPTED_OUT,
        "optout": {"channel": optout.channel, "at": optout.at, "how": optout.how},
    }
