"""The ``csv:`` block of a rule: its JSON Schema and its reading into :class:`CsvSettings`.

One reading serves the trigger's constructor (every problem raised at once) and its ``check``
(the problems listed for ``nextstep validate``).
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nextstep.adapters.triggers.config import ConfigReader
from nextstep.adapters.triggers.csv.detect import DELIMITERS, header_aliases
from nextstep.adapters.triggers.csv.reader import DEFAULT_MAX_FIELD, CsvOptions
from nextstep.engine.plugins import ConfigProblem

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "CSV files dropped in a folder.",
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "description": "A glob relative to nextstep.yaml, e.g. inbox/loans/*.csv",
        },
        "settle": {
            "$ref": "#/$defs/duration",
            "default": "2s",
            "description": "How long a file's size must stay the same before it is read.",
        },
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
        "encoding": {"type": "string", "minLength": 1},
        "header_map": {
            "description": "Event field name → CSV column (or a list of alternative columns).",
            "type": "object",
            "additionalProperties": {"type": ["string", "array"], "items": {"type": "string"}},
        },
        "batch": {
            "type": "integer",
            "minimum": 1,
            "default": 1000,
            "description": "Rows per ledger transaction.",
        },
        "max_field_size": {
            "type": "integer",
            "minimum": 1,
            "default": 1048576,
            "description": "Most characters in one field; a row with a longer one is quarantined.",
        },
        "done_dir": {"type": "string"},
        "failed_dir": {"type": "string"},
    },
}

_KEYS = tuple(CONFIG_SCHEMA["properties"])


@dataclass(frozen=True, slots=True)
class CsvSettings:
    """The trigger's config, checked and converted."""

    pattern: str
    settle: float
    options: CsvOptions
    done: str
    failed: str


def read_settings(config: Mapping[str, Any]) -> tuple[CsvSettings, list[ConfigProblem]]:
    """The ``csv:`` block read, and every problem found in it."""
    read = ConfigReader("csv", config, _KEYS)
    pattern = read.text("path", required=True)
    settle = read.duration("settle", 2.0)
    delimiter = read.choice("delimiter", DELIMITERS)
    encoding = read.text("encoding") or None
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            read.fail("encoding", f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, utf-16)")
    headers: dict[str, list[str]] = {}
    for name, columns in read.mapping("header_map").items():
        listed = [columns] if isinstance(columns, str) else columns
        if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
            read.fail(("header_map", str(name)), "is not a column name or a list of column names")
            continue
        headers[str(name)] = listed
    batch = read.positive_int("batch", 1000)
    max_field = read.positive_int("max_field_size", DEFAULT_MAX_FIELD)
    done = read.text("done_dir", "done")
    failed = read.text("failed_dir", "failed")
    options = CsvOptions(delimiter, encoding, header_aliases(headers), batch, max_field)
    return CsvSettings(pattern, settle, options, done, failed), read.problems


def parse_settings(config: Mapping[str, Any]) -> CsvSettings:
    """Check the ``csv:`` block; raises ConfigError listing every problem."""
    settings, problems = read_settings(config)
    ConfigReader.raise_problems("csv", problems)
    return settings
