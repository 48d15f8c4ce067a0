"""The layout keeps its promises: the engine names no plug-in, and every import goes through the
one ``nextstep`` package."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the engine must not name: the bundled plug-ins and their provider's vocabulary.
PLUG_IN_WORDS = re.compile(
    r"1msg|onemsg|smtp|db_poll|\bcsv\b|whatsapp|hookinfo|sendTemplate", re.IGNORECASE
)
# Lines of engine/ that may still say one of them, and why: prose about the product.
ALLOWED = {
    # the command line's top-level help says what the product does
    (
        "engine/commands/cli.py",
        '"""nextstep: tell clients on WhatsApp when their case moves forward.',
    ),
    # the opt-out list's file format is read and written with Python's own module for it
    (
        "engine/optout/listfile.py",
        "from csv import Dialect, DictReader, Error, Sniffer, excel, writer",
    ),
    # the console's export is a file format, not the trigger of that name
    (
        "engine/runtime/console/export.py",
        'CONTENT_TYPE, FILE_NAME, LABEL = "text/csv; charset=utf-8", "notifications.csv", "CSV"',
    ),
}
SOURCES = ("engine", "adapters", "tests", "bench", "nextstep")
TOP_LEVEL_IMPORT = re.compile(r"^\s*(?:from|import)\s+(?:engine|adapters)(?:\.|\s|$)", re.M)


def _files(folder: str, pattern: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob(pattern) if "__pycache__" not in p.parts)


def test_the_engine_names_no_plug_in() -> None:
    found = set()
    for path in _files("engine", "*"):
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if PLUG_IN_WORDS.search(line):
                found.add((path.relative_to(ROOT).as_posix(), line.strip()))
    assert found == ALLOWED


def test_imports_go_through_the_nextstep_package() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for folder in SOURCES
        for path in _files(folder, "*.py")
        for match in TOP_LEVEL_IMPORT.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# Database drivers, and the backends' own modules, are the ledger backends' business.
DRIVER_IMPORT = re.compile(
    r"^\s*(?:from|import)\s+(?:sqlite3|psycopg|psycopg_pool|nextstep\.engine\.ledger\."
    r"(?:sqlite|postgres))\b",
    re.M,
)
# Who may import them: the backends; open_store, which picks one; the demo (its CRM is a
# SQLite file) and the db_poll trigger, which reads the user's own database.
DRIVER_USERS = (
    "engine/ledger/sqlite/",
    "engine/ledger/postgres/",
    "engine/ledger/__init__.py",
    "adapters/demo/",
    "adapters/triggers/db_poll/",
)


def test_only_the_ledger_backends_import_a_database_driver() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for folder in ("engine", "adapters")
        for path in _files(folder, "*.py")
        if not path.relative_to(ROOT).as_posix().startswith(DRIVER_USERS)
        for match in DRIVER_IMPORT.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
