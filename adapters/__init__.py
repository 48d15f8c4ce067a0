"""The plug-ins shipped with nextstep: triggers (csv, http, db_poll), channels (1msg, webhook,
smtp) and commands (the 1MSG sandbox, the demo). The engine finds them through the entry points
declared in pyproject.toml, exactly as it finds a plug-in installed from another distribution
(docs/plugins.md)."""
