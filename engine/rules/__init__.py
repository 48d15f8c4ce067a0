"""Rules: ``nextstep.yaml`` and the rule files, read (``yamlload``), checked against the JSON
Schema (``schema``), compiled with every problem located (``compiler``, ``config``) into
:class:`~nextstep.engine.rules.rule.Rule` values, and evaluated for an event (``render``)."""
