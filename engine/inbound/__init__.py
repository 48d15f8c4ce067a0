"""Messages people send us: kept in the ledger once each (providers post them again), their
stop and start words applied to the opt-out list, and read back as events by a trigger.

Channels that receive messages (the ``ReceivesMessages`` ability) hand them to
:class:`.sink.InboundSink` from their webhook route; :mod:`.retention` forgets old ones."""
