"""What the bundled triggers share: reading their config block, and their progress in the ledger.

Each trigger's ``config_schema`` already checks its block when the rules are loaded; this reader
reads it again for triggers built directly (tests, ``nextstep ingest``) and converts the values.
The same reading serves the trigger's ``check`` (the problems as a list, for ``nextstep
validate``) and its constructor (every problem at once as a :class:`ConfigError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import ConfigError, Problem
from nextstep.engine.plugins import ConfigProblem, TriggerContext


async def read_progress(context: TriggerContext, key: str) -> str | None:
    """A progress value from the ledger, read off the event loop (the store is thread-safe)."""
    return await asyncio.to_thread(context.store.get_progress, key)


class ConfigReader:
    """Reads one trigger block; collects problems and raises them together in :meth:`finish`."""

    def __init__(self, kind: str, config: Mapping[str, Any], known: Collection[str]) -> None:
        self.kind = kind
        self.config = config
        self.problems: list[ConfigProblem] = []
        for key in config:
            if key not in known:
                self.fail(str(key), f"unknown key (allowed: {', '.join(sorted(known))})")

    def fail(self, key: str | tuple[str | int, ...], message: str) -> None:
        """Record a problem with ``key`` (a key of the block, or a path inside it)."""
        self.problems.append(((key,) if isinstance(key, str) else key, message))

    def finish(self) -> None:
        """Raise every problem found so far (see :meth:`raise_problems`)."""
        self.raise_problems(self.kind, self.problems)

    @staticmethod
    def raise_problems(kind: str, problems: Sequence[ConfigProblem]) -> None:
        """Raise ``problems`` of a ``kind`` block as one ConfigError, each at
        ``trigger.<kind>.<path>``; nothing when there are none."""
        if problems:
            raise ConfigError(
                [
                    Problem("", 0, 0, None, ".".join(map(str, ("trigger", kind, *path))), text)
                    for path, text in problems
                ]
            )

    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        """A non-empty string."""
        value = self.config.get(key)
        if value is None:
            if required:
                self.fail(key, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"{value!r} is not a non-empty string")
            return default
        return value

    def duration(self, key: str, default: float) -> float:
        """A duration such as ``30s`` or ``5m`` in seconds."""
        value = self.config.get(key)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            return default

    def positive_int(self, key: str, default: int) -> int:
        """An integer of at least 1."""
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(key, f"{value!r} is not a whole number of at least 1")
            return default
        return value

    def choice(self, key: str, options: Sequence[str]) -> str | None:
        """One of ``options``, or None when absent."""
        value = self.config.get(key)
        if value is not None and value not in options:
            shown = ", ".join(repr(o) for o in options)
            self.fail(key, f"{value!r} is not one of {shown}")
            return None
        return value if isinstance(value, str) else None

    def mapping(self, key: str) -> Mapping[str, Any]:
        """A mapping (empty when absent)."""
        value = self.config.get(key, {})
        if not isinstance(value, Mapping):
            self.fail(key, "is not a mapping")
            return {}
        return value
