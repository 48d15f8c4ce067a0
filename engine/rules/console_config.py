"""``server.console`` of ``nextstep.yaml``: the web console's users and sessions
(docs/console.md). The schema has checked the shapes; this reads them into values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nextstep.engine.durations import parse_duration
from nextstep.engine.rules.yamlload import PathKey

MIN_SECRET = 32  # characters of a session secret
Report = Callable[[PathKey, str], None]


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """Someone who may log in: ``viewer`` reads (phone numbers masked), ``operator`` also
    releases and cancels."""

    name: str
    role: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The console is served when ``server.console`` is present."""

    users: tuple[ConsoleUser, ...]
    session_secret: str | None = None  # None: a new one at each start
    session_ttl: float = 12 * 3600.0
    secure_cookie: bool = False
    refresh: float = 2.0

    def user(self, name: str) -> ConsoleUser | None:
        """The user called ``name``, None when there is none."""
        return next((u for u in self.users if u.name == name), None)


def _duration(raw: Mapping[str, Any], key: str, default: float) -> float:
    try:
        return parse_duration(raw[key]) if key in raw else default
    except (ValueError, TypeError):
        return default  # the schema has said why


def console_config(raw: Any, report: Report) -> ConsoleConfig | None:
    """The console's settings, None when ``server.console`` is absent or unreadable; problems
    beyond the schema (a short secret, a name twice) go to ``report(path, message)``."""
    if not isinstance(raw, Mapping):
        return None
    users: list[ConsoleUser] = []
    listed = raw.get("users")
    for i, item in enumerate(listed if isinstance(listed, list) else []):
        if not isinstance(item, Mapping):
            continue
        name, role, hashed = (str(item.get(k, "")) for k in ("name", "role", "password_hash"))
        if any(u.name == name for u in users):
            report(("server", "console", "users", i, "name"), f"user {name} is listed twice")
        users.append(ConsoleUser(name, role, hashed))
    secret = raw.get("session_secret")
    secret_text = None if secret is None or secret == "" else str(secret)
    if secret_text is not None and len(secret_text) < MIN_SECRET:
        report(
            ("server", "console", "session_secret"),
            f"is {len(secret_text)} characters; a session secret needs {MIN_SECRET} or more "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)",
        )
    return ConsoleConfig(
        users=tuple(users),
        session_secret=secret_text,
        session_ttl=_duration(raw, "session_ttl", 12 * 3600.0),
        secure_cookie=raw.get("secure_cookie") is True,
        refresh=max(0.5, _duration(raw, "refresh", 2.0)),
    )
