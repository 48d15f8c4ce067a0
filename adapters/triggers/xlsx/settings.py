"""The ``xlsx:`` block of a rule: its JSON Schema and its reading into :class:`XlsxSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nextstep.adapters.triggers.config import ConfigReader
from nextstep.adapters.triggers.csv.detect import header_aliases
from nextstep.adapters.triggers.xlsx.reader import XlsxOptions
from nextstep.engine.plugins import ConfigProblem

SUFFIXES = (".xlsx", ".xlsm")

CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "Excel workbooks (.xlsx) dropped in a folder.",
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "description": "A glob relative to nextstep.yaml, e.g. inbox/loans/*.xlsx",
        },
        "sheet": {
            "type": "string",
            "minLength": 1,
            "description": "The sheet to read (default: the first).",
        },
        "settle": {
            "$ref": "#/$defs/duration",
            "default": "2s",
            "description": "How long a file's size must stay the same before it is read.",
        },
        "header_map": {
            "description": "Event field name → column header (or a list of alternatives).",
            "type": "object",
            "additionalProperties": {"type": ["string", "array"], "items": {"type": "string"}},
        },
        "batch": {
            "type": "integer",
            "minimum": 1,
            "default": 1000,
            "description": "Rows per ledger transaction.",
        },
        "done_dir": {"type": "string"},
        "failed_dir": {"type": "string"},
    },
}


@dataclass(frozen=True, slots=True)
class XlsxSettings:
    """The trigger's config, checked and converted."""

    pattern: str
    settle: float
    options: XlsxOptions
    done: str
    failed: str


def read_settings(config: Mapping[str, Any]) -> tuple[XlsxSettings, list[ConfigProblem]]:
    """The ``xlsx:`` block read, and every problem found in it."""
    read = ConfigReader("xlsx", config, tuple(CONFIG_SCHEMA["properties"]))
    pattern = read.text("path", required=True)
    if pattern and not pattern.lower().endswith(SUFFIXES) and not pattern.endswith("*"):
        read.fail("path", f"{pattern!r} must name .xlsx files (end the glob in .xlsx)")
    sheet = read.text("sheet") or None
    settle = read.duration("settle", 2.0)
    headers: dict[str, list[str]] = {}
    for name, columns in read.mapping("header_map").items():
        listed = [columns] if isinstance(columns, str) else columns
        if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
            read.fail(("header_map", str(name)), "is not a column name or a list of column names")
            continue
        headers[str(name)] = listed
    batch = read.positive_int("batch", 1000)
    done = read.text("done_dir", "done")
    failed = read.text("failed_dir", "failed")
    options = XlsxOptions(sheet, header_aliases(headers), batch)
    return XlsxSettings(pattern, settle, options, done, failed), read.problems


def parse_settings(config: Mapping[str, Any]) -> XlsxSettings:
    """Check the ``xlsx:`` block; raises ConfigError listing every problem."""
    settings, problems = read_settings(config)
    ConfigReader.raise_problems("xlsx", problems)
    return settings
