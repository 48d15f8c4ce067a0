"""Delivery: what happens after a send: statuses from acks (``statemachine``, ``acks``),
polling for missing ones, the rule's policy (``policy``: expiry, fallbacks), carried out in
the ledger (``fallbacks``, ``timers``)."""
