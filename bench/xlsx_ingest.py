"""Benchmark: reading a 100,000-row .xlsx export with the two candidate readers, openpyxl
(read-only mode) and python-calamine, beside a baseline: the same rows as CSV through the csv
module. Each reader turns every row into the text values an event gets
(``adapters/triggers/xlsx/cells.py``: numbers as their format shows them, dates as ISO text),
and runs in a process of its own, so each peak RSS is its own.

    .venv/bin/python bench/xlsx_ingest.py [--rows N] [--keep]

Prints rows/s and peak RSS (max resident set of the reading process, the interpreter and its
imports included, and the part the reading added) for each, and the trigger's own reader
(``XlsxFile``, which is openpyxl's read-only mode plus number formats, batches and quarantine).
Needs the ``xlsx`` extra and python-calamine (both in ``dev``).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

COLUMNS = ["first_name", "application_id", "stage", "due_date", "phone", "amount", "notes"]
STAGES = ["docs_required", "approved", "signed", "closed"]


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    """The export as .xlsx (phones as numbers with a zero-padding format, dates, amounts) and
    the same rows, as a user would see them, as CSV."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    rng = random.Random(7)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Export")
    sheet.append(COLUMNS)
    xlsx, csv_path = folder / "export.xlsx", folder / "export.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for i in range(rows):
            due = dt.datetime(2026, 1, 1) + dt.timedelta(days=rng.randrange(365))
            phone = rng.randrange(600_000_000, 700_000_000)
            amount = round(rng.uniform(10, 100_000), 2)
            values: list[Any] = [
                f"client{i}",
                i,
                rng.choice(STAGES),
                due,
                phone,
                amount,
                "call before noon" if i % 3 else "",
            ]
            cells = []
            for value, number_format in zip(
                values,
                [None, None, None, "dd/mm/yyyy", "0000000000", "#,##0.00", None],
                strict=True,
            ):
                cell = WriteOnlyCell(sheet, value=value)
                if number_format:
                    cell.number_format = number_format
                cells.append(cell)
            sheet.append(cells)
            writer.writerow(
                [
                    f"client{i}",
                    i,
                    values[2],
                    due.date().isoformat(),
                    f"{phone:010d}",
                    f"{amount:.2f}",
                    values[6],
                ]
            )
    book.save(xlsx)
    return xlsx, csv_path


# -- the readers (each runs in a child process) ---------------------------------------------
def read_openpyxl(path: Path) -> Iterator[dict[str, str]]:
    from openpyxl import load_workbook

    from nextstep.adapters.triggers.xlsx.cells import cell_text

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = book.worksheets[0].iter_rows()
        header = [cell_text(c.value) for c in next(rows)]
        for row in rows:
            yield dict(
                zip(header, (cell_text(c.value, c.number_format) for c in row), strict=False)
            )
    finally:
        book.close()


def read_calamine(path: Path) -> Iterator[dict[str, str]]:
    from python_calamine import CalamineWorkbook

    from nextstep.adapters.triggers.xlsx.cells import cell_text

    book = CalamineWorkbook.from_path(str(path))
    try:
        rows = book.get_sheet_by_index(0).iter_rows()
        header = [cell_text(v) for v in next(rows)]
        for row in rows:
            # calamine gives values only: no number format (a zero-padded phone loses its 0)
            yield dict(zip(header, (cell_text(v) for v in row), strict=False))
    finally:
        book.close()


def read_trigger(path: Path) -> Iterator[dict[str, str]]:
    from nextstep.adapters.triggers.xlsx.reader import XlsxFile, XlsxOptions, file_facts

    with XlsxFile(path, file_facts(path), XlsxOptions()) as sheet:
        for batch in sheet.batches():
            for _, _, data in batch.rows:
                yield data


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        for row in rows:
            yield dict(zip(header, map(str.strip, row), strict=False))


READERS: dict[str, Callable[[Path], Iterator[dict[str, str]]]] = {
    "openpyxl": read_openpyxl,
    "calamine": read_calamine,
    "trigger": read_trigger,
    "csv": read_csv,
}


def child(name: str, path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    count, first = 0, None
    for data in READERS[name](path):
        count += 1
        if first is None:
            first = data
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"rows": count, "seconds": seconds, "peak": peak, "before": before, "first": first}
        )
    )


def measure(name: str, path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--child", nargs=2, metavar=("READER", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    folder = Path(tempfile.mkdtemp(prefix="nextstep-xlsx-bench-"))
    try:
        started = time.perf_counter()
        xlsx, csv_path = write_files(folder, args.rows)
        print(
            f"file: {args.rows:,} rows x {len(COLUMNS)} columns, "
            f"{xlsx.stat().st_size / 2**20:.1f} MB "
            f"xlsx ({csv_path.stat().st_size / 2**20:.1f} MB as CSV), written in "
            f"{time.perf_counter() - started:.1f} s ({folder})"
        )
        labels = {
            "openpyxl": "openpyxl read-only",
            "calamine": "python-calamine",
            "trigger": "xlsx trigger reader (openpyxl + formats, batches)",
            "csv": "baseline: csv module, same rows as CSV",
        }
        for name in ("openpyxl", "calamine", "trigger", "csv"):
            path = csv_path if name == "csv" else xlsx
            r = measure(name, path)
            if "error" in r:
                print(f"{labels[name]:<52}: not measured ({r['error']})")
                continue
            rate = r["rows"] / r["seconds"]
            print(
                f"{labels[name]:<52}: {rate:>9,.0f} rows/s ({r['seconds']:.1f} s), peak RSS "
                f"{r['peak']:.0f} MB (+{r['peak'] - r['before']:.0f} MB reading); phone "
                f"{r['first']['phone']!r}, due {r['first']['due_date']!r}"
            )
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
