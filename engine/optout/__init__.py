"""Opt-outs: people who asked for no more messages. The list lives in the ledger (``Store.
add_optouts`` and friends, which also skip what is queued for them); this package holds what
reaches it: stop and start words in inbound messages (:mod:`.keywords`), the operator's and the
CRM's edits with their numbers read like ``to:`` (:mod:`.entries`), comma-separated files
(:mod:`.listfile`) and the ``/optouts`` endpoint (:mod:`.routes`)."""
