"""``nextstep ingest FILE --rule RULE --dry-run``: every row's fate and the first messages,
read as the trigger reads the file, with nothing written anywhere."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nextstep.engine.commands.cli import main
from tests.triggers.pipeline import rule, write_config

HEADER = "First Name;Application ID;Stage;Due Date;Mobile\n"
ROWS = (
    "maria;1;docs_required;June 20;+34 600 111 222\n"
    "ana;2;approved;June 21;+34 600 111 223\n"
    "bo;3;docs_required;June 22;bad\n"
    "maria;1;docs_required;June 20;+34 600 111 222\n"
    "cy;4;docs_required\n"
    "dee;5;docs_required;June 23;+34 600 111 225\n"
)


def cli(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ingest", "-c", str(folder / "nextstep.yaml"), *args])
    return result.exit_code, result.output


def setup(tmp_path: Path) -> Path:
    trigger = '{csv: {path: "in/*.csv", header_map: {phone: Mobile}}}'
    write_config(tmp_path, rule("docs", trigger, dedupe=True))
    export = tmp_path / "export.csv"
    export.write_bytes((HEADER + ROWS).encode("cp1252"))
    return export


def test_a_dry_run_prints_each_row_and_writes_nothing(tmp_path: Path) -> None:
    export = setup(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out = cli(tmp_path, str(export), "--rule", "docs", "--dry-run", "--show", "1")
    assert code == 1, out  # rows with errors
    lines = out.splitlines()
    assert lines[0] == f"{export}: dry run for rule docs (nothing is written)"
    assert lines[1] == "  row 1 (line 2): matched → 34600111222"
    assert lines[2].startswith("      text: Hello, Maria! For your process")
    assert "sendTemplate" in lines[3] and '"phone": "34600111222"' in lines[4]
    assert lines[5].startswith("  row 2 (line 3): skipped: ")
    assert lines[6].startswith("  row 3 (line 4): error: ") and "bad" in lines[6]
    assert lines[7] == "  row 4 (line 5): duplicate: duplicate of row 1 (dedupe key '1')"
    assert lines[8].startswith("  row 5 (line 6): error: missing column(s)")
    assert lines[9] == "  row 6 (line 7): matched → 34600111225"  # beyond --show 1
    assert lines[10] == "6 rows: 2 matched, 1 skipped, 1 duplicates, 2 errors"
    # no ledger, no errors file, the file where it was
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "ledger.db").exists()


def test_a_dry_run_as_json(tmp_path: Path) -> None:
    export = setup(tmp_path)
    code, out = cli(tmp_path, str(export), "--rule", "docs", "--dry-run", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["summary"] == {
        "rows": 6,
        "matched": 2,
        "skipped": 1,
        "duplicates": 1,
        "errors": 2,
        "problems": [],
        "notes": [],
    }
    assert [r["status"] for r in doc["rows"]] == [
        "matched",
        "skipped",
        "error",
        "duplicate",
        "error",
        "matched",
    ]
    assert doc["rows"][0]["payload"]["phone"] == "34600111222"
    assert not (tmp_path / "ledger.db").exists()


def test_a_dry_run_of_a_binary_file_says_why_it_would_fail(tmp_path: Path) -> None:
    setup(tmp_path)
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(256)) * 40)
    code, out = cli(tmp_path, str(junk), "--rule", "docs", "--dry-run")
    assert code == 1
    assert "  file: not a CSV file: binary content" in out
    assert out.splitlines()[-1] == "0 rows: 0 matched, 0 skipped, 0 duplicates, 0 errors"
    assert not (tmp_path / "ledger.db").exists() and not (tmp_path / "junk.csv.errors.csv").exists()


def test_a_dry_run_leaves_an_existing_ledger_unchanged(tmp_path: Path) -> None:
    export = setup(tmp_path)
    clean = tmp_path / "clean.csv"
    clean.write_text(HEADER + ROWS.splitlines()[0] + "\n")
    code, _ = cli(tmp_path, str(clean), "--rule", "docs", "--no-wait")
    assert code == 0
    ledger = (tmp_path / "ledger.db").read_bytes()
    code, _ = cli(tmp_path, str(export), "--rule", "docs", "--dry-run")
    assert (tmp_path / "ledger.db").read_bytes() == ledger


def test_json_without_dry_run_is_a_usage_error(tmp_path: Path) -> None:
    export = setup(tmp_path)
    code, out = cli(tmp_path, str(export), "--rule", "docs", "--json")
    assert code == 2 and "--json goes with --dry-run" in out
