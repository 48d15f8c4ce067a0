"""The hostile-input corpus (tests/triggers/corpus/, described in its README.md): every CSV,
XLSX and HTTP input gets its expected result within a time and memory bound.

Small inputs are files of the corpus; large ones (huge fields, huge arrays, many rows or
columns) are generated here, from the same descriptions. Bounds are loose (a loaded 2-core
machine): time in wall seconds, memory as tracemalloc's peak of Python allocations while the
input is handled. ``pytest -s tests/triggers/test_corpus.py`` prints the figures.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from nextstep.adapters.triggers.csv.trigger import CsvTrigger
from nextstep.adapters.triggers.http import HttpTrigger, events_app
from nextstep.adapters.triggers.xlsx import XlsxTrigger
from tests.support.fake_emit import FakeEmit, fake_context
from tests.triggers.http_kit import AUTH, TOKEN
from tests.triggers.loopback import serve
from tests.triggers.waiting import running
from tests.triggers.xlsx_files import write_big_xlsx, write_xlsx

CORPUS = Path(__file__).parent / "corpus"
MAX_BODY = 1024 * 1024


@dataclass
class Measured:
    seconds: float = 0.0
    megabytes: float = 0.0


@contextmanager
def measured(name: str, seconds: float, megabytes: float) -> Iterator[Measured]:
    """Time and trace the block; fail when it is over its bounds; print the figures."""
    figures = Measured()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield figures
    finally:
        figures.seconds = time.perf_counter() - started
        figures.megabytes = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    print(f"corpus {name}: {figures.seconds:.3f} s, {figures.megabytes:.1f} MB")
    assert figures.seconds < seconds, f"{name}: {figures.seconds:.2f} s (bound {seconds} s)"
    assert figures.megabytes < megabytes, f"{name}: {figures.megabytes:.1f} MB (bound {megabytes})"


# -- files: (input, expected) -----------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """What reading a file does: why it fails (a fragment; "" = it does not), rows read,
    rows refused, events emitted."""

    failed: str = ""
    rows: int = 0
    errors: int = 0
    events: int = 0
    seconds: float = 5.0
    megabytes: float = 32.0


def corpus(name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return Path(shutil.copy(CORPUS / name, folder / name))

    return make


def generated(name: str, content: Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content())
        return folder / name

    return make


TWO = Expect(rows=2, events=2)
CSV_CASES = [
    ("binary_random.csv", Expect(failed="binary content")),
    ("xlsx_renamed.csv", Expect(failed="a ZIP archive (an Excel .xlsx workbook?)")),
    ("pdf_renamed.csv", Expect(failed="a PDF document")),
    ("nul_heavy.csv", Expect(failed="binary content")),
    ("nul_in_one_field.csv", TWO),  # one stray NUL: text, kept in its value
    ("control_chars_text.csv", TWO),
    ("ragged_rows.csv", Expect(rows=6, errors=2, events=4)),
    ("unterminated_quote.csv", TWO),  # the open quote takes the rest of the file
    ("only_delimiters.csv", Expect(failed="no header row")),
    ("empty.csv", Expect(failed="no header row")),
    ("header_only.csv", Expect()),
    ("repeated_headers.csv", Expect(rows=1, events=1)),
    ("utf8_bom.csv", TWO),
    ("utf16le_bom.csv", TWO),
    ("utf16be_bom.csv", TWO),
    ("utf16le_no_bom.csv", TWO),
    ("utf16be_no_bom.csv", TWO),
    ("utf32le_no_bom.csv", TWO),
    ("utf32be_no_bom.csv", TWO),
    ("cp1252_semicolon.csv", TWO),
    ("mac_cr_only.csv", TWO),
    ("invalid_utf8_declared.csv", Expect(rows=1, events=1)),
]
GENERATED_CSV = [
    (
        "huge_field.csv",  # over the csv module's limit and the trigger's default
        lambda: b"name,note\nana,short\nbo," + b"x" * 3_000_000 + b"\ncy,fine\n",
        Expect(rows=3, errors=1, events=2, megabytes=64),
    ),
    (
        "runaway_quote.csv",  # a quote that never closes, for 2 MB
        lambda: b'name,note\nana,short\nbo,"' + b"y," * 1_000_000 + b"\n",
        Expect(rows=2, errors=1, events=1, megabytes=64),
    ),
    (
        "field_just_over_csv_default.csv",  # 131,073: the csv module's limit, not ours (15.7)
        lambda: b"name,note\nana,short\nbo," + b"z" * 131_073 + b"\ncy,fine\n",
        Expect(rows=3, events=3),
    ),
    (
        "crlf_lf_cr_mixed.csv",
        lambda: b"name,phone\r\nana,1\nbo,2\rcy,3\r\n",
        Expect(rows=3, events=3),
    ),
    (
        "gzip_renamed.csv",
        lambda: b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8,
        Expect(failed="a gzip archive: unpack it first"),
    ),
    (
        "nul_only.csv",
        lambda: b"\x00" * 100_000,
        Expect(failed="binary content"),
    ),
    (
        "many_columns.csv",
        lambda: (",".join(f"c{i}" for i in range(20_000)) + "\n").encode() * 4,
        Expect(rows=3, events=3, megabytes=96),
    ),
    (
        "many_rows.csv",
        lambda: b"name,phone\n" + b"".join(b"p%d,+3460%07d\n" % (i, i) for i in range(50_000)),
        Expect(rows=50_000, events=50_000, seconds=30, megabytes=128),
    ),
]


@pytest.mark.parametrize(
    ("make", "expect"),
    [pytest.param(corpus(name), expect, id=name) for name, expect in CSV_CASES]
    + [
        pytest.param(generated(name, content), expect, id=name)
        for name, content, expect in GENERATED_CSV
    ],
)
async def test_csv_corpus(tmp_path: Path, make: Callable[[Path], Path], expect: Expect) -> None:
    path = make(tmp_path)
    emit = FakeEmit()
    trigger = CsvTrigger({"path": "*.csv"}, fake_context(emit, str(tmp_path)))
    with measured(path.name, expect.seconds, expect.megabytes):
        summary = await trigger.ingest(path, emit)
    check(summary, emit, expect)


def check(summary: Any, emit: FakeEmit, expect: Expect) -> None:
    if expect.failed:
        assert expect.failed in summary.failed
    else:
        assert summary.failed == ""
    assert (summary.rows, summary.errors, len(emit.events)) == (
        expect.rows,
        expect.errors,
        expect.events,
    )


# -- xlsx ---------------------------------------------------------------------------------------
def not_a_workbook(folder: Path) -> Path:
    with zipfile.ZipFile(folder / "plain.zip", "w") as archive:
        archive.writestr("readme.txt", "a zip, but no workbook in it")
    return Path(shutil.move(folder / "plain.zip", folder / "zip_not_workbook.xlsx"))


def xlsx(name: str, rows: list[list[Any]]) -> Callable[[Path], Path]:
    return lambda folder: write_xlsx(folder / name, rows)


def formula(folder: Path) -> Path:
    return write_xlsx(folder / "formula_no_cache.xlsx", [["name", "total"], ["ana", "=1+1"]])


def sparse(folder: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["A1"], sheet["B1"] = "name", "phone"
    sheet["A2"], sheet["B2"] = "ana", "1"
    sheet["A200000"], sheet["B200000"] = "zed", "2"
    book.save(folder / "sparse.xlsx")
    return folder / "sparse.xlsx"


XLSX_CASES = [
    pytest.param(
        generated("random_bytes.xlsx", lambda: bytes(range(256)) * 16),
        Expect(failed="not a readable .xlsx workbook"),
        id="random_bytes.xlsx",
    ),
    pytest.param(
        generated("truncated_zip.xlsx", lambda: b"PK\x03\x04" + b"\x00" * 100),
        Expect(failed="not a readable .xlsx workbook"),
        id="truncated_zip.xlsx",
    ),
    pytest.param(
        not_a_workbook, Expect(failed="not a readable .xlsx workbook"), id="zip_not_workbook"
    ),
    pytest.param(
        xlsx("error_cells.xlsx", [["a", "b"], ["1", "#DIV/0!"], ["2", "#REF!"], ["3", "ok"]]),
        Expect(rows=3, errors=2, events=1),
        id="error_cells.xlsx",
    ),
    pytest.param(formula, Expect(rows=1, events=1), id="formula_no_cache.xlsx"),
    # 200,000 rows of which 199,998 are empty: openpyxl walks them (5.7 s seen at a load of 11)
    pytest.param(sparse, Expect(rows=2, events=2, seconds=20), id="sparse.xlsx"),
    pytest.param(
        xlsx("huge_cells.xlsx", [["a", "b"]] + [["x" * 32_767, "y" * 32_767] for _ in range(100)]),
        Expect(rows=100, events=100, seconds=15, megabytes=96),
        id="huge_cells.xlsx",
    ),
    pytest.param(
        lambda folder: write_big_xlsx(
            folder / "wide.xlsx", [f"c{i}" for i in range(2000)], ([i] * 2000 for i in range(50))
        ),
        Expect(rows=50, events=50, seconds=30, megabytes=96),
        id="wide.xlsx",
    ),
]


@pytest.mark.parametrize(("make", "expect"), XLSX_CASES)
async def test_xlsx_corpus(tmp_path: Path, make: Callable[[Path], Path], expect: Expect) -> None:
    path = make(tmp_path)
    emit = FakeEmit()
    trigger = XlsxTrigger({"path": "*.xlsx"}, fake_context(emit, str(tmp_path)))
    with measured(path.name, expect.seconds, expect.megabytes):
        summary = await trigger.ingest(path, emit)
    check(summary, emit, expect)
    if path.name == "formula_no_cache.xlsx":  # no cached value: the cell is empty
        assert emit.data() == [{"name": "ana", "total": ""}]


# -- http events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """What posting a body answers: the status, the events taken, refused events, a fragment
    of the error."""

    status: int
    events: int = 0
    refused: int = 0
    error: str = ""
    seconds: float = 5.0
    megabytes: float = 64.0
    media: str = "application/json"


def huge_array() -> bytes:
    items, size, i = [], 2, 0
    while size + 12 < MAX_BODY:
        item = b'{"n":%d}' % i
        items.append(item)
        size += len(item) + 1
        i += 1
    return b"[" + b",".join(items) + b"]"


HTTP_CASES = [
    ("deep_in_array.json", Answer(202, events=2, refused=1)),
    ("deep_object.json", Answer(202, refused=1)),
    ("wrong_types.json", Answer(400, error="every event must be a JSON object")),
    ("not_json.json", Answer(400, error="the body is not JSON")),
    ("nan_literal.json", Answer(400, error="the body is not JSON")),
    ("lone_surrogate.json", Answer(400, error="the body is not JSON")),
    ("invalid_utf8.json", Answer(400, error="the body is not JSON")),
    ("bom_prefixed.json", Answer(202, events=1)),
    ("duplicate_keys.json", Answer(202, events=1)),  # the last value wins
    ("huge_integer.json", Answer(202, events=1)),
    (
        "ndjson_one_bad_line.ndjson",
        Answer(400, error="neither JSON nor NDJSON", media="application/x-ndjson"),
    ),
]
GENERATED_HTTP = [
    (
        "huge_array_within_max_body",
        huge_array,
        Answer(202, events=88_306, seconds=30, megabytes=256),
    ),
    ("over_max_body", lambda: b"[" + b"0," * MAX_BODY + b"0]", Answer(413, error="over")),
    (
        "many_keys",
        lambda: b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(50_000)) + b"}",
        Answer(202, events=1, megabytes=128),
    ),
    ("empty_body", lambda: b"", Answer(400, error="the body is empty")),
    ("only_whitespace", lambda: b"   \n ", Answer(400, error="the body is empty")),
    ("top_level_null", lambda: b"null", Answer(400, error="every event must be a JSON object")),
    ("empty_array", lambda: b"[]", Answer(202)),
    ("infinite_float", lambda: b'{"n": 1e400}', Answer(400, error="the body is not JSON")),
    (
        "one_string_of_1_mib",
        lambda: b'{"s":"' + b"x" * (MAX_BODY - 20) + b'"}',
        Answer(202, events=1, megabytes=96),
    ),
    ("arrays_500_deep", lambda: b"[" * 500 + b"]" * 500, Answer(202, refused=1)),
    (
        "nul_in_strings",
        lambda: b'{"phone": "+34600\\u0000111", "s": "a\\u0000b"}',
        Answer(202, events=1),
    ),
    (
        "ndjson_deep_line_between_good_ones",
        lambda: b'{"a":1}\n' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b'\n{"b":2}\n',
        Answer(202, events=2, refused=1, media="application/x-ndjson"),
    ),
    (
        "ndjson_10000_lines",
        lambda: b"".join(b'{"n": %d}\n' % i for i in range(10_000)),
        Answer(202, events=10_000, megabytes=128, media="application/x-ndjson"),
    ),
]


@pytest.mark.parametrize(
    ("content", "answer"),
    [pytest.param(lambda n=name: (CORPUS / n).read_bytes(), a, id=name) for name, a in HTTP_CASES]
    + [pytest.param(content, a, id=name) for name, content, a in GENERATED_HTTP],
)
async def test_http_corpus(
    tmp_path: Path, request: pytest.FixtureRequest, content: Callable[[], bytes], answer: Answer
) -> None:
    body = content()
    emit = FakeEmit()
    trigger = HttpTrigger({"path": "/events/x", "max_body": MAX_BODY}, fake_context(emit, "."))
    async with (
        running(trigger, emit),
        serve(events_app({trigger.path: trigger}, TOKEN)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        headers = {**AUTH, "Content-Type": answer.media}
        with measured(request.node.callspec.id, answer.seconds, answer.megabytes):
            got = await client.post("/events/x", content=body, headers=headers)
            await asyncio.sleep(0)
    assert got.status_code == answer.status, got.text[:500]
    doc = got.json()
    if answer.error:
        assert answer.error in doc["error"]
        assert emit.calls == 0
    else:
        refused = [e for e in doc.get("errors", []) if e["rule"] is None]
        assert (len(emit.events), len(refused)) == (answer.events, answer.refused)
