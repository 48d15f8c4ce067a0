"""nextstep's core, one sub-package per stage, in the order data flows:

- :mod:`~nextstep.engine.rules`: configuration and rule files, from YAML to compiled rules,
  and rendering an event through a rule (expressions, filters, the recipient, send windows);
- :mod:`~nextstep.engine.intake`: a trigger's events through every rule into the ledger;
- :mod:`~nextstep.engine.ledger`: the single source of truth (the ``Store`` Protocol, SQLite);
- :mod:`~nextstep.engine.sending`: the dispatcher, rate limits, circuits, what an attempt means;
- :mod:`~nextstep.engine.delivery`: delivery statuses, policies (expiry, fallbacks), timers;
- :mod:`~nextstep.engine.runtime`: the daemon, reload, supervision, HTTP server, logs;
- :mod:`~nextstep.engine.commands`: the ``nextstep`` command line.

Values shared by every stage sit beside them: ``errors``, ``model``, ``clock``, ``durations``,
``backoff``, ``metrics``, ``redact`` and ``plugins`` (the trigger and channel contracts).
"""
