"""Logging for the daemon and the CLI: text or JSON lines, with personal data and secrets removed.

Every handler gets one :class:`RedactingFilter`. It renders the message once, masks phone
numbers (last 4 digits kept; addresses, ports, dates, file positions, ids and durations stay:
:mod:`nextstep.engine.redact`), replaces every known secret value where it stands as a whole
token (tokens and passwords from the config, refreshed on reload) and bearer/query tokens with
``***``, and does the same to the exception text, so neither formatter can leak what the
filter removed.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TextIO

from nextstep.engine.redact import Secrets, redact, remember_secrets, secrets_in

__all__ = [
    "RedactingFilter",
    "Secrets",
    "config_secrets",
    "configure_logging",
    "redact",
    "secrets_in",
]

if TYPE_CHECKING:
    from nextstep.engine.rules.config import Config

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and exception text through :func:`redact`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = Secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the known secret values (called when the config is loaded or reloaded);
        the ledger's and health's redaction of outside texts uses them too."""
        values = set(secrets)
        self._secrets = Secrets(values)
        remember_secrets(values)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops one."""
        if getattr(record, "_nextstep_redacted", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A bad format string must not take logging down; keep the raw text instead.
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message, self._secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        for name, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, name, redact(value, self._secrets))
        setattr(record, "_nextstep_redacted", True)  # noqa: B010 (not a LogRecord field)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, exc (when any) and ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        doc: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        for key, value in _extras(record).items():
            doc.setdefault(key, value)
        return json.dumps(doc, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(
    fmt: LogFormat = "text",
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> RedactingFilter:
    """Install one redacting handler on the root logger; returns its filter (for new secrets)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    redacting = RedactingFilter(secrets)
    handler.addFilter(redacting)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Chatty libraries: a line per file change or per HTTP request is noise at 200 events/s.
    for name in ("watchfiles", "uvicorn.access", "httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return redacting


def config_secrets(config: Config) -> set[str]:
    """Every secret value the config holds (for the log filter)."""
    found = secrets_in({name: dict(c.settings) for name, c in config.channels.items()})
    # Headers a channel sends with every request are credentials, whatever their name.
    for c in config.channels.values():
        headers = c.settings.get("headers")
        if isinstance(headers, Mapping):
            found.update(str(v) for v in headers.values() if len(str(v)) >= 4)
    found.update(s for s in (config.server.event_token, config.server.webhook_secret) if s)
    server = config.settings.get("server")
    token = server.get("optout_token") if isinstance(server, Mapping) else None
    if token:
        found.add(str(token))
    return found
