"""The plug-ins shipped with nextstep: triggers (csv, http, db_poll) and channels (1msg,
webhook, smtp). The engine finds them through the entry points declared in pyproject.toml,
exactly as it finds a plug-in installed from another distribution."""
