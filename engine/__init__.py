"""nextstep engine: config, rules, expressions, ledger, dispatcher, policies, daemon, CLI."""

__version__ = "0.1.0"
