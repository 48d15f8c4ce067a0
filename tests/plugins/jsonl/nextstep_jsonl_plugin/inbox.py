"""The ``jsonl_inbox`` trigger: every line of the files matching ``path`` becomes an event.

``trigger: {jsonl_inbox: {path: "inbox/*.jsonl", every: 1s}}``: ``path`` is a glob of ``.jsonl``
files relative to ``nextstep.yaml``; ``every`` how often to look (1 s). A file is read once per
content: its hash is the progress key, committed with the notifications its lines created.
Lines that are not JSON objects are skipped.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import ConfigError, Problem
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import ConfigProblem, Emit, TriggerContext

log = logging.getLogger(__name__)

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "JSON-lines files dropped in a folder.",
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "description": "A glob of .jsonl files relative to nextstep.yaml.",
        },
        "every": {"$ref": "#/$defs/duration", "description": "How often to look (1s)."},
    },
}


def _problems(config: Mapping[str, Any]) -> list[ConfigProblem]:
    """What the constructor refuses (the same for ``check``)."""
    path = str(config.get("path", ""))
    found: list[ConfigProblem] = []
    if not path.endswith(".jsonl"):
        found.append((("path",), f"{path!r} must name .jsonl files (end the glob in .jsonl)"))
    if Path(path).is_absolute():
        found.append((("path",), "must be relative to nextstep.yaml"))
    return found


class JsonlInbox:
    """Reads the lines of every matching file once, then looks again every ``every``."""

    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA

    @staticmethod
    def source_key(config: Mapping[str, Any]) -> str:
        """Rules with the same glob share one trigger."""
        return f"jsonl_inbox:{config.get('path', '')}"

    @staticmethod
    def check(config: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
        """The glob must name .jsonl files, relative to the config."""
        return _problems(config)

    def __init__(self, config: Mapping[str, Any], context: TriggerContext) -> None:
        problems = _problems(config)
        if problems:
            where = "trigger.jsonl_inbox."
            raise ConfigError(
                [Problem("", 0, 0, None, where + ".".join(map(str, p)), m) for p, m in problems]
            )
        self.source = self.source_key(config)
        self.pattern = str(Path(context.base_dir) / str(config["path"]))
        self.every = parse_duration(config.get("every", 1.0))
        self.context = context
        self._stats = {"files": 0, "events": 0}

    def status(self) -> dict[str, Any]:
        """Files and events read so far."""
        return dict(self._stats)

    async def run(self, emit: Emit) -> None:
        """Read every new file, then look again, until cancelled."""
        while True:
            for name in await asyncio.to_thread(lambda: sorted(glob.glob(self.pattern))):
                await self._read(Path(name), emit)
            await self.context.clock.sleep(self.every)

    async def _read(self, path: Path, emit: Emit) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        key = f"{self.source}:{hashlib.sha256(data).hexdigest()}"
        if await asyncio.to_thread(self.context.store.get_progress, key) is not None:
            return
        events = []
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            try:
                item = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                item = None
            if isinstance(item, dict):
                origin = {"kind": "jsonl_inbox", "source": self.source, "file": path.name}
                events.append(Event(item, {**origin, "line": number}))
        await emit(events, [Progress(key, "done")])
        self._stats["files"] += 1
        self._stats["events"] += len(events)
        log.info("jsonl_inbox %s: %d events", path.name, len(events))
