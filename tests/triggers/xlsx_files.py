"""Real .xlsx files for the tests, written with openpyxl (the trigger's own reader)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook


def write_xlsx(
    path: Path,
    rows: Iterable[Sequence[Any]],
    *,
    formats: Mapping[str, str] | None = None,
    sheet: str = "Sheet1",
    before: Mapping[str, Iterable[Sequence[Any]]] | None = None,
) -> Path:
    """A workbook whose sheet ``sheet`` holds ``rows``; ``formats`` maps cells (``B2``) to
    number formats; ``before`` adds sheets ahead of it."""
    book = Workbook()
    first = book.active
    assert first is not None
    for name, other in (before or {}).items():
        extra = book.create_sheet(name)
        for row in other:
            extra.append(list(row))
    target = book.create_sheet(sheet)
    for row in rows:
        target.append(list(row))
    for cell, number_format in (formats or {}).items():
        target[cell].number_format = number_format
    book.remove(first)
    book.save(path)
    return path


def write_big_xlsx(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A large workbook, streamed (write-only mode)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Export")
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    book.save(path)
    return path
