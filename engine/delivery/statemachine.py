"""The delivery-status state machine: pure, monotone, and the same for webhooks and polling.

A notification accepted by the provider is ``sent``; acks move it to ``delivered`` and ``read``
and never back. ``failed`` is terminal and can only be reached before the message is known to
be on a device: a ``failed`` after ``delivered`` (one of several devices) is history, not a
state, and a ``delivered`` after ``failed`` does not revive the message. Every other state
(expired, skipped, superseded, cancelled, in doubt) ignores acks; the acks are still recorded
in the notification's history by the caller.
"""

from __future__ import annotations

from nextstep.engine.model import DELIVERY_ORDER, State

# Ack statuses: sent, delivered, read, failed; ``viewed`` (legacy) and ``played`` (a voice
# message) mean read.
_ACK_STATES: dict[str, State] = {
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.READ,
    "viewed": State.READ,
    "played": State.READ,
    "failed": State.FAILED,
}

ACK_STATUSES = frozenset(_ACK_STATES)
"""Every ack status the machine understands; any other value is recorded and ignored."""

EXPECTABLE = ("sent", "delivered", "read")
"""The values a rule's ``expect:`` may take, weakest first."""


def ack_state(status: str) -> State | None:
    """The state an ack status stands for (``viewed``/``played`` mean read), None if unknown."""
    return _ACK_STATES.get(status.strip().lower())


def apply(current: State, ack_status: str) -> tuple[State, bool]:
    """Apply one ack to a notification's state: ``(new_state, changed)``.

    Only ``sent``, ``delivered`` and ``read`` move, and only forward; ``failed`` is reachable
    from ``sent`` alone. Everything else (unknown statuses, open or terminal states, duplicates,
    acks that would move backwards) leaves the state as it is.
    """
    target = ack_state(ack_status)
    rank = DELIVERY_ORDER.get(current)
    if target is None or rank is None:
        return current, False
    if target is State.FAILED:
        return (State.FAILED, True) if current is State.SENT else (current, False)
    if DELIVERY_ORDER[target] > rank:
        return target, True
    return current, False


def reached(state: State, expect: str) -> bool:
    """True when ``state`` satisfies a rule's ``expect`` (sent, delivered or read)."""
    wanted = ack_state(expect)
    rank = DELIVERY_ORDER.get(state)
    if wanted is None or wanted is State.FAILED or rank is None:
        return False
    return rank >= DELIVERY_ORDER[wanted]


def is_terminal(state: State) -> bool:
    """True for states no ack and no policy moves any more (failed, expired, skipped…)."""
    return state not in DELIVERY_ORDER and state not in (State.QUEUED, State.SENDING)
