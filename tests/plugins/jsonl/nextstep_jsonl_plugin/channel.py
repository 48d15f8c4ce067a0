"""The ``jsonl`` channel: each message's ``record`` appended to a file as one JSON line.

Settings (``nextstep.yaml``): ``path``, the file (absolute, or relative to the folder the daemon
runs in); ``fsync``, flush every line to disk before the send counts as done (default false).
A ``send:`` block has ``record``: a mapping whose strings are templates.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from nextstep.engine.clock import Clock
from nextstep.engine.model import Message, Outcome, OutcomeKind
from nextstep.engine.plugins import ChannelTraits, Preview, TemplatedSend

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "Append each message to a JSON-lines file.",
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "The file lines go to."},
        "fsync": {"type": "boolean", "default": False, "description": "Flush every line."},
    },
}

SEND_SCHEMA: Mapping[str, Any] = {
    "description": "The JSON object to write, its strings as templates.",
    "type": "object",
    "required": ["record"],
    "properties": {
        "record": {
            "type": "object",
            "minProperties": 1,
            "description": "jsonl: the object written as one line.",
        }
    },
}


class JsonlChannel:
    """Appends one JSON line per message to a file."""

    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA
    send_schema: ClassVar[Mapping[str, Any]] = SEND_SCHEMA
    traits: ClassVar[ChannelTraits] = ChannelTraits()  # no phone needed, no delivery reports
    compile_send = staticmethod(TemplatedSend.compile)

    @staticmethod
    def preview(message: Message, settings: Mapping[str, Any]) -> Preview:
        """The line :meth:`send` would append, and where."""
        return Preview(f"append a line to {settings.get('path', '')}", message.fields["record"])

    def __init__(self, name: str, config: Mapping[str, Any], *, clock: Clock) -> None:
        self.name = name
        self._path = Path(str(config["path"]))
        self._fsync = bool(config.get("fsync", False))
        self._lines = 0
        self._lock = asyncio.Lock()

    async def send(self, message: Message) -> Outcome:
        """Append the record; a file that cannot be written is a transient failure."""
        line = json.dumps(message.fields["record"], ensure_ascii=False, sort_keys=True) + "\n"
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                return Outcome(OutcomeKind.TRANSIENT, f"cannot write {self._path}: {exc}")
            self._lines += 1
            return Outcome(OutcomeKind.ACCEPTED, "appended", f"{self._path.name}:{self._lines}")

    def _append(self, line: str) -> None:
        with self._path.open("a", encoding="utf-8") as out:
            out.write(line)
            if self._fsync:
                out.flush()
                os.fsync(out.fileno())

    def status(self) -> dict[str, Any]:
        """Lines written (merged into the daemon's health)."""
        return {"lines": self._lines}

    async def probe(self) -> bool:
        """True when the file's folder exists."""
        return self._path.parent.is_dir()

    async def aclose(self) -> None:
        """Nothing to close: each line opens the file."""
