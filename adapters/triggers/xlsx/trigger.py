"""The ``xlsx`` trigger itself: the csv trigger's watching, progress, quarantine and moves,
with an .xlsx sheet as the file (see the package's docstring for the block)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from nextstep.adapters.triggers.csv.detect import FileFacts
from nextstep.adapters.triggers.csv.trigger import CsvTrigger
from nextstep.adapters.triggers.xlsx.reader import XlsxFile, XlsxOptions, dry_rows, file_facts
from nextstep.adapters.triggers.xlsx.settings import (
    CONFIG_SCHEMA,
    SUFFIXES,
    parse_settings,
    read_settings,
)
from nextstep.engine.plugins import ConfigProblem, FileRow


class XlsxTrigger(CsvTrigger):
    """Watches a glob and turns each complete workbook's rows (one sheet) into events."""

    kind: ClassVar[str] = "xlsx"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA
    file_suffixes: ClassVar[tuple[str, ...]] = SUFFIXES

    @staticmethod
    def file_config(path: Path) -> Mapping[str, Any]:
        """Read one workbook's first sheet with the defaults."""
        return {"path": path.name}

    @staticmethod
    def check(config: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
        """What the constructor would refuse (a glob of other files, a bad header map…)."""
        return read_settings(config)[1]

    @staticmethod
    def read_rows(config: Mapping[str, Any], path: Path) -> Iterator[FileRow]:
        """The rows of ``path`` as :meth:`ingest` would read them, writing nothing."""
        return dry_rows(parse_settings(config).options, path, str(config.get("path", "")))

    @staticmethod
    def _settings(config: Mapping[str, Any]) -> Any:
        return parse_settings(config)

    @staticmethod
    def _inspect(path: Path, options: Any) -> FileFacts:
        return file_facts(path)

    @staticmethod
    def _open(path: Path, facts: FileFacts, options: Any) -> Any:
        assert isinstance(options, XlsxOptions)
        return XlsxFile(path, facts, options)

    def _event_trigger(self, name: str) -> dict[str, Any]:
        return {**super()._event_trigger(name), "sheet": self.settings.options.sheet}
