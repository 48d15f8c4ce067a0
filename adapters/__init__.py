"""nextstep adapters: one module per trigger (csv, http, db_poll) and per channel (1msg, webhook,
smtp). The engine finds them through the entry points declared in pyproject.toml."""
