"""Reading real CSV files: every dialect, encoding and header variant, bad rows, resume."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from nextstep.adapters.triggers.csv.detect import (
    detect_delimiter,
    field_names,
    header_aliases,
    normalise_header,
)
from nextstep.adapters.triggers.csv.trigger import CsvTrigger
from nextstep.engine.errors import ConfigError
from nextstep.engine.model import Event, Progress
from tests.support.fake_emit import FakeEmit, errors_when, fake_context
from tests.support.waiting import until

FIXTURES = Path(__file__).parent / "fixtures"

ROWS = [
    ["First Name", "Phone", "Stage"],
    ["María", "+34 600 111 222", "docs_required"],
    ["Zoë", "+34 600 333 444", "approved"],
]


def write_csv(
    path: Path,
    rows: list[list[str]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    bom: bytes = b"",
    newline: str = "\r\n",
) -> Path:
    text = "".join(delimiter.join(_quote(v, delimiter) for v in row) + newline for row in rows)
    path.write_bytes(bom + text.encode(encoding))
    return path


def _quote(value: str, delimiter: str) -> str:
    if any(c in value for c in (delimiter, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


async def ingest(
    path: Path, config: dict[str, object] | None = None, emit: FakeEmit | None = None
) -> tuple[FakeEmit, object]:
    emit = emit or FakeEmit()
    trigger = CsvTrigger({"path": "*.csv", **(config or {})}, fake_context(emit, str(path.parent)))
    summary = await trigger.ingest(path, emit)
    return emit, summary


@pytest.mark.parametrize(
    "delimiter", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"]
)
async def test_each_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(tmp_path / "a.csv", ROWS, delimiter=delimiter)
    emit, _ = await ingest(path)
    assert emit.data() == [
        {"first_name": "María", "phone": "+34 600 111 222", "stage": "docs_required"},
        {"first_name": "Zoë", "phone": "+34 600 333 444", "stage": "approved"},
    ]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        pytest.param("utf-8", b"", id="utf-8"),
        pytest.param("utf-8", codecs.BOM_UTF8, id="utf-8-bom"),
        pytest.param("utf-16-le", codecs.BOM_UTF16_LE, id="utf-16-le-bom"),
        pytest.param("utf-16-be", codecs.BOM_UTF16_BE, id="utf-16-be-bom"),
        pytest.param("cp1252", b"", id="windows-1252"),
    ],
)
async def test_each_encoding_is_detected(tmp_path: Path, encoding: str, bom: bytes) -> None:
    path = write_csv(tmp_path / "a.csv", ROWS, delimiter=";", encoding=encoding, bom=bom)
    emit, _ = await ingest(path)
    assert [d["first_name"] for d in emit.data()] == ["María", "Zoë"]
    assert "first_name" in emit.data()[0]  # the BOM did not stick to the first header


async def test_encoding_override_wins(tmp_path: Path) -> None:
    # Valid UTF-8 bytes that the producer meant as latin-1: only an override can tell.
    path = write_csv(tmp_path / "a.csv", [["name"], ["Ã©"]], encoding="latin-1")
    emit, _ = await ingest(path, {"encoding": "utf-8"})
    assert emit.data() == [{"name": "é"}]
    emit, _ = await ingest(
        write_csv(tmp_path / "b.csv", [["name"], ["é"]]), {"encoding": "latin-1"}
    )
    assert emit.data() == [{"name": "Ã©"}]


async def test_delimiter_override_wins(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a;b,c\n1;2,3\n")
    emit, _ = await ingest(path)
    assert emit.data() == [{"a_b": "1;2", "c": "3"}]
    emit, _ = await ingest(path, {"delimiter": ";"}, FakeEmit())
    assert emit.data() == [{"a": "1", "b_c": "2,3"}]


async def test_quoted_fields_keep_embedded_newlines_and_delimiters(tmp_path: Path) -> None:
    note = 'Called Monday.\r\nSays "ok"; will send,\nID card tonight'
    path = write_csv(tmp_path / "a.csv", [["id", "note"], ["1", note], ["2", "x"]])
    emit, _ = await ingest(path)
    assert emit.data() == [{"id": "1", "note": note}, {"id": "2", "note": "x"}]
    assert [e.trigger["row"] for e in emit.events] == [1, 2]
    assert [e.trigger["line"] for e in emit.events] == [2, 5]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        pytest.param(" Phone ", "phone", id="stray-spaces"),
        pytest.param("PHONE", "phone", id="upper-case"),
        pytest.param("Phone Number", "phone_number", id="words"),
        pytest.param("Mobile-Phone (main)", "mobile_phone_main", id="punctuation"),
        pytest.param("", "column_1", id="empty"),
    ],
)
def test_header_names_are_normalised(header: str, field: str) -> None:
    assert field_names([header], {}) == [field]


def test_header_map_claims_its_name_before_an_unmapped_column() -> None:
    aliases = header_aliases({"phone": ["Mobile Phone Number", "Mobile"], "id": "Record ID"})
    raw = ["Record ID", "Phone", " mobile phone number ", "phone"]
    assert field_names(raw, aliases) == ["id", "phone_2", "phone", "phone_3"]
    assert normalise_header("  Fecha   Límite ") == "fecha_límite"


def test_delimiter_guess_prefers_consistent_columns() -> None:
    # Decimal commas inside a semicolon file must not make it look comma-separated.
    sample = "id;amount;name\n1;1,50;Ana\n2;2,75;Bo\n"
    assert detect_delimiter(sample, complete=True) == ";"
    assert detect_delimiter("just one column\nvalue\n", complete=True) == ","


async def test_excel_semicolon_cp1252_fixture(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes((FIXTURES / "excel_es_semicolon_cp1252.csv").read_bytes())
    config = {"header_map": {"phone": "Teléfono", "application_id": "Nº Solicitud"}}
    emit, summary = await ingest(path, config, FakeEmit(errors_when("phone", "")))
    first = emit.data()[0]
    assert first["nombre"] == "José" and first["apellidos"] == "Muñoz Peña"
    assert first["phone"] == "600 111 222" and first["application_id"] == "12345"
    assert first["importe"] == "1.250,50 €" and first["fecha_límite"] == "20/06/2026"
    assert emit.data()[4]["importe"] == "“2.000” €"
    assert summary.queued == 4 and summary.errors == 1  # type: ignore[attr-defined]
    errors = read_errors(tmp_path / "excel.csv.errors.csv", ";")
    assert [(e["row"], e["reason"], e["Nombre"]) for e in errors] == [
        ("4", "rule fake-rule: bad phone", "Zoë")
    ]


async def test_utf8_bom_export_with_multiline_notes_fixture(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_bytes((FIXTURES / "crm_utf8_bom_multiline.csv").read_bytes())
    emit, _ = await ingest(path, {"header_map": {"phone": "Mobile"}})
    data = emit.data()
    assert [d["first_name"] for d in data] == ["maría", "ana", "Łukasz"]
    assert data[0]["last_name"] == "López" and data[0]["phone"] == "+34 600 111 222"
    assert data[0]["notes"] == (
        'Called on Monday.\r\nAsked for "payslips", ID card;\nwill upload tonight'
    )
    assert data[2]["notes"] == "Line one\nLine two\n\nLine four, after a blank line"
    assert [e.trigger["line"] for e in emit.events] == [2, 5, 6]


async def test_crm_export_with_many_unused_columns_fixture(tmp_path: Path) -> None:
    path = tmp_path / "hubspot.csv"
    path.write_bytes((FIXTURES / "hubspot_export.csv").read_bytes())
    config = {"header_map": {"phone": "Mobile Phone Number"}}
    emit, summary = await ingest(path, config, FakeEmit(errors_when("phone", "not a phone")))
    data = emit.data()
    assert len(data[0]) == 30
    assert (data[0]["first_name"], data[0]["phone"], data[0]["deal_stage"]) == (
        "Maria",
        "600111222",
        "docs_required",
    )
    assert data[0]["state_region"] == "" and data[0]["application_id"] == "12345"
    assert summary.queued == 3 and summary.errors == 1  # type: ignore[attr-defined]


def read_errors(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


async def test_bad_rows_are_quarantined_and_good_rows_go_on(tmp_path: Path) -> None:
    rows = [
        ["name", "phone", "stage"],
        ["ana", "+34600000001", "docs"],
        ["short", "+34600000002"],  # a missing column
        ["bo", "bad", "docs"],  # the rule rejects its phone
        ["cy", "+34600000003", "docs", "surplus"],  # a field the header does not have
        ["di", "+34600000004", "docs", "", ""],  # trailing empty fields are fine
    ]
    path = write_csv(tmp_path / "in.csv", rows)
    emit, summary = await ingest(path, {"batch": 2}, FakeEmit(errors_when("phone", "bad")))
    assert [d["name"] for d in emit.data()] == ["ana", "bo", "di"]
    assert (summary.queued, summary.errors, summary.rows) == (2, 3, 5)  # type: ignore[attr-defined]
    errors = read_errors(tmp_path / "in.csv.errors.csv")
    assert [(e["row"], e["line"], e["name"]) for e in errors] == [
        ("2", "3", "short"),
        ("3", "4", "bo"),
        ("4", "5", "cy"),
    ]
    assert errors[0]["reason"] == "missing column(s) stage: 2 fields, the header has 3"
    assert errors[1]["reason"] == "rule fake-rule: bad phone"
    assert errors[2]["reason"] == "4 fields, the header has only 3"


async def test_same_content_is_not_read_twice(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", ROWS)
    emit, first = await ingest(path)
    again = write_csv(tmp_path / "copy.csv", ROWS)
    _, second = await ingest(again, emit=emit)
    assert first.queued == 2 and second.already_done  # type: ignore[attr-defined]
    assert len(emit.events) == 2


async def test_a_failed_commit_resumes_after_the_last_committed_row(tmp_path: Path) -> None:
    rows = [["n", "phone"]] + [[str(i), f"+3460000{i:04d}"] for i in range(1, 26)]
    path = write_csv(tmp_path / "a.csv", rows)
    emit = FakeEmit()
    trigger = CsvTrigger({"path": "*.csv", "batch": 10}, fake_context(emit, str(tmp_path)))

    def stop_after_two_batches(summary: object, done: int, size: int) -> None:
        if len(emit.batches) == 2:
            emit.fail_with = RuntimeError("ledger went away")

    with pytest.raises(RuntimeError):
        await trigger.ingest(path, emit, on_batch=stop_after_two_batches)
    assert [d["n"] for d in emit.data()] == [str(i) for i in range(1, 21)]
    emit.fail_with = None
    summary = await trigger.ingest(path, emit)
    assert summary.resumed_after == 20 and summary.rows == 5
    assert [d["n"] for d in emit.data()] == [str(i) for i in range(1, 26)]


@pytest.mark.parametrize(
    ("content", "config", "reason"),
    [
        pytest.param(b"", {}, "no header row", id="empty"),
        pytest.param(b"\n\n  \n", {}, "no header row", id="blank"),
        pytest.param(
            "name\nJosé\n".encode("cp1252"),
            {"encoding": "utf-8"},
            "UnicodeDecodeError",
            id="wrong-encoding",
        ),
    ],
)
async def test_unreadable_file_is_reported(
    tmp_path: Path, content: bytes, config: dict[str, object], reason: str
) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(content)
    emit, summary = await ingest(path, config)
    assert reason in summary.failed  # type: ignore[attr-defined]
    assert "file unreadable" in (tmp_path / "a.csv.errors.csv").read_text(encoding="utf-8-sig")


def test_config_problems_are_reported_together(tmp_path: Path) -> None:
    emit = FakeEmit()
    with pytest.raises(ConfigError) as caught:
        CsvTrigger(
            {
                "path": "*.csv",
                "settle": "soon",
                "delimiter": ":",
                "encoding": "klingon",
                "batch": 0,
                "colour": "red",
            },
            fake_context(emit, str(tmp_path)),
        )
    paths = [p.path for p in caught.value.problems]
    assert paths == sorted(
        [
            "trigger.csv.settle",
            "trigger.csv.delimiter",
            "trigger.csv.encoding",
            "trigger.csv.batch",
            "trigger.csv.colour",
        ]
    )


async def test_the_next_batch_is_handed_over_while_one_is_committed(tmp_path: Path) -> None:
    rows = [["name", "phone"]] + [
        [f"p{i}", "bad" if i == 4 else f"+3460000{i:04d}"] for i in range(1, 8)
    ]
    path = write_csv(tmp_path / "a.csv", rows)
    emit = FakeEmit(errors_when("phone", "bad"))
    handed: list[int] = []

    async def overlapping(events: Sequence[Event], progress: Sequence[Progress]) -> Any:
        # Like the engine: batches commit in the order they were handed over.
        handed.append(len(events))
        mine = len(handed)
        if mine < 4:  # batches 1-3 of 4 commit only once the next one has been handed over
            await until(lambda: len(handed) > mine)
        await until(lambda: len(emit.batches) == mine - 1)
        return await emit(events, progress)

    trigger = CsvTrigger({"path": "*.csv", "batch": 2}, fake_context(emit, str(tmp_path)))
    summary = await trigger.ingest(path, overlapping)
    assert handed == [2, 2, 2, 1, 0]  # four batches, then the file's final progress
    assert [json.loads(p.value)["row"] for _, (p,) in emit.batches] == [2, 4, 6, 7, 7]
    assert (summary.rows, summary.queued, summary.errors) == (7, 6, 1)
    assert list(summary.notification_ids) == [1, 2, 3, 4, 5, 6]
    assert [e["name"] for e in read_errors(tmp_path / "a.csv.errors.csv")] == ["p4"]
