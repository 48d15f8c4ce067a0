"""The xlsx trigger on real workbooks written by the test: values as the sheet shows them,
sheets, empty rows, quarantine, done/ and failed/, ``nextstep ingest`` and a killed ingest."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextstep.adapters.triggers.xlsx import XlsxTrigger
from nextstep.adapters.triggers.xlsx.cells import cell_text
from nextstep.engine.clock import FakeClock
from nextstep.engine.commands.cli import main
from nextstep.engine.errors import ConfigError
from nextstep.engine.plugins import FileReader, ReadsFiles, ReadsRows
from tests.support.fake_emit import FakeEmit, errors_when, fake_context
from tests.support.ledgers import notifications_in
from tests.support.waiting import until
from tests.triggers.pipeline import rule, write_config
from tests.triggers.test_ingest_command import wait_for_committed_rows
from tests.triggers.waiting import running
from tests.triggers.xlsx_files import write_big_xlsx, write_xlsx

HEADER = ["First Name", "Phone", "Intl", "As Text", "Due", "Amount", "Share"]


async def ingest(path: Path, **config: object) -> tuple[FakeEmit, object]:
    emit = FakeEmit(errors_when("first_name", "bad"))
    trigger = XlsxTrigger({"path": "*.xlsx", **config}, fake_context(emit, str(path.parent)))
    summary = await trigger.ingest(path, emit)
    return emit, summary


def test_the_plug_in_has_its_abilities() -> None:
    assert isinstance(XlsxTrigger, ReadsFiles) and isinstance(XlsxTrigger, ReadsRows)
    assert XlsxTrigger.file_suffixes == (".xlsx", ".xlsm")
    assert XlsxTrigger.check({"path": "in/*.csv", "sheet": ""}, Path(".")) == [
        (("path",), "'in/*.csv' must name .xlsx files (end the glob in .xlsx)"),
        (("sheet",), "'' is not a non-empty string"),
    ]
    with pytest.raises(ConfigError, match="trigger.xlsx.batch"):
        XlsxTrigger({"path": "*.xlsx", "batch": 0}, fake_context(FakeEmit(), "."))


async def test_values_are_text_as_the_sheet_shows_them(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "a.xlsx",
        [
            HEADER,
            ["maría", 600111222, 34600111222, "0600111222", dt.date(2026, 6, 20), 3.5, 0.25],
            [
                "zoë",
                611223344,
                34611223344.0,
                "0611223344",
                dt.datetime(2026, 6, 21, 10, 30),
                1234567.891,
                1,
            ],
        ],
        formats={
            "B2": "0000000000",
            "B3": "0000000000",
            "E2": "dd/mm/yyyy",
            "E3": "dd/mm/yyyy hh:mm",
            "F2": "#,##0.00",
            "G2": "0%",
            "G3": "0%",
        },
    )
    emit, summary = await ingest(path)
    assert emit.data() == [
        {
            "first_name": "maría",
            "phone": "0600111222",  # a number whose format keeps the leading zero
            "intl": "34600111222",  # not 3.46e10, not 34600111222.0
            "as_text": "0600111222",
            "due": "2026-06-20",
            "amount": "3.50",
            "share": "25%",
        },
        {
            "first_name": "zoë",
            "phone": "0611223344",
            "intl": "34611223344",
            "as_text": "0611223344",
            "due": "2026-06-21T10:30:00",
            "amount": "1234567.891",
            "share": "100%",
        },
    ]
    event = emit.events[0]
    assert event.trigger == {
        "kind": "xlsx",
        "source": "*.xlsx",
        "file": "a.xlsx",
        "sheet": None,
        "row": 1,
        "line": 2,
    }


@pytest.mark.parametrize(
    ("value", "number_format", "text"),
    [
        pytest.param(600111222, "0000000000", "0600111222", id="zero-padded"),
        pytest.param(34600111222.0, "General", "34600111222", id="whole-float"),
        pytest.param(0.1 + 0.2, "General", "0.3", id="fifteen-digits"),
        pytest.param(1.5e-7, "General", "0.00000015", id="no-exponent"),
        pytest.param(2.5, "0", "3", id="rounds-half-up"),
        pytest.param(0.255, "0.0%", "25.5%", id="percent"),
        pytest.param(True, None, "TRUE", id="bool"),
        pytest.param(dt.time(9, 5), "h:mm", "09:05:00", id="time"),
        pytest.param("  text ", None, "text", id="text-stripped"),
    ],
)
def test_cell_text(value: object, number_format: str | None, text: str) -> None:
    assert cell_text(value, number_format) == text


async def test_a_named_sheet_empty_rows_and_a_late_header(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "a.xlsx",
        [[], [None, None], ["name", "phone"], ["ana", "+34600000001"], [], [None], ["bo", "2"]],
        sheet="Export",
        before={"Notes": [["not", "this"], ["one", "x"]]},
    )
    emit, summary = await ingest(path, sheet="Export")
    assert emit.data() == [{"name": "ana", "phone": "+34600000001"}, {"name": "bo", "phone": "2"}]
    assert [e.trigger["line"] for e in emit.events] == [4, 7]
    emit, _ = await ingest(path)  # the first sheet
    assert emit.data() == [{"not": "one", "this": "x"}]
    emit, summary = await ingest(path, sheet="Nope")
    assert emit.events == [] and "no sheet 'Nope' (its sheets: 'Notes', 'Export')" in summary.failed  # type: ignore[attr-defined]


async def test_bad_rows_are_quarantined_and_the_others_go_on(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "a.xlsx",
        [
            ["first_name", "phone"],
            ["ana", "+34600000001"],
            ["bo", "#N/A"],
            ["bad", "+34600000003"],
            ["cy", "+34600000004", "stray"],
            ["dee", "+34600000005"],
        ],
    )
    emit, summary = await ingest(path)
    assert [d["first_name"] for d in emit.data()] == ["ana", "bad", "dee"]
    assert (summary.rows, summary.errors, summary.queued) == (5, 3, 2)  # type: ignore[attr-defined]
    errors = (tmp_path / "a.xlsx.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[0] == "row,line,reason,first_name,phone"
    assert errors[1].startswith("2,3,cell B3 is #N/A,bo")
    assert errors[2].startswith("3,4,rule fake-rule: bad phone,bad")
    assert errors[3].startswith('4,5,"a value in column C, which has no header",cy')


async def test_a_workbook_is_watched_read_and_moved(tmp_path: Path, clock: FakeClock) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_xlsx(inbox / "a.xlsx", [["name", "phone"], ["ana", "+34600000001"]])
    (inbox / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    for name in ("a.xlsx", "broken.xlsx"):
        os.utime(inbox / name, (1, 1))
    emit = FakeEmit()
    trigger = XlsxTrigger(
        {"path": "inbox/*.xlsx", "settle": "0s"}, fake_context(emit, str(tmp_path), clock)
    )
    assert isinstance(trigger, FileReader)
    async with running(trigger, emit):
        await until(lambda: trigger.status()["files"] == 2)
    assert emit.data() == [{"name": "ana", "phone": "+34600000001"}]
    assert (inbox / "done" / "a.xlsx").exists() and (inbox / "failed" / "broken.xlsx").exists()
    reason = (inbox / "failed" / "broken.xlsx.errors.csv").read_text(encoding="utf-8-sig")
    assert "not a readable .xlsx workbook" in reason
    assert list(emit.progress) == [
        f"xlsx:inbox/*.xlsx:{k.rsplit(':', 1)[1]}" for k in emit.progress
    ]


def _cli(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ingest", "-c", str(folder / "nextstep.yaml"), *args])
    return result.exit_code, result.output


def test_nextstep_ingest_picks_the_xlsx_reader_by_suffix(tmp_path: Path) -> None:
    write_config(tmp_path, rule("docs", '{csv: {path: "inbox/*.csv"}}'))
    path = write_xlsx(
        tmp_path / "export.xlsx",
        [
            ["first_name", "application_id", "stage", "due_date", "phone"],
            ["maria", 1, "docs_required", dt.date(2026, 6, 20), 34600111222],
            ["ana", 2, "approved", dt.date(2026, 6, 21), 34600111223],
        ],
    )
    code, out = _cli(tmp_path, str(path), "--rule", "docs", "--dry-run")
    assert code == 0, out
    assert "row 1 (line 2): matched → 34600111222" in out and "2026-06-20" in out
    code, out = _cli(tmp_path, str(path), "--rule", "docs", "--no-wait")
    assert code == 0, out
    assert "queued                        1" in out
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        (key,) = db.execute("SELECT key FROM progress WHERE key LIKE 'xlsx:%'").fetchone()
    assert key.startswith("xlsx:rule:docs:")


def test_without_the_extra_the_trigger_names_it() -> None:
    code = (
        "import sys; sys.modules['openpyxl'] = None\n"
        "from nextstep.engine.plugins import trigger_class, PluginUnavailable\n"
        "try:\n    trigger_class('xlsx')\nexcept PluginUnavailable as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == (
        "trigger 'xlsx' is not available: needs openpyxl: pip install 'nextstep-whatsapp[xlsx]'"
    )


@pytest.mark.slow
def test_a_killed_xlsx_ingest_resumes_and_queues_every_row_once(tmp_path: Path) -> None:
    write_config(tmp_path, rule("docs", '{xlsx: {path: "inbox/*.xlsx", batch: 100}}'))
    total = 15_000
    write_big_xlsx(
        tmp_path / "big.xlsx",
        ["first_name", "application_id", "stage", "due_date", "phone"],
        ([f"p{i}", i, "docs_required", "June 20", 34600000000 + i] for i in range(total)),
    )
    command = [
        str(Path(sys.executable).parent / "nextstep"),
        "ingest",
        str(tmp_path / "big.xlsx"),
        "--rule",
        "docs",
        "--no-wait",
        "-c",
        str(tmp_path / "nextstep.yaml"),
    ]
    env = {**os.environ, "COLUMNS": "120"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        committed = wait_for_committed_rows(
            tmp_path / "ledger.db", at_least=500, pattern="xlsx:rule:docs:%"
        )
        assert first.poll() is None, "the ingest finished before it could be killed"
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=30)
        first.stdout.close()  # type: ignore[union-attr]
        first.stderr.close()  # type: ignore[union-attr]
    assert first.returncode == -signal.SIGKILL and committed < total
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed after row" in second.stdout
    found = notifications_in(tmp_path / "ledger.db", limit=total + 10)
    assert len(found) == len({n.event["application_id"] for n in found}) == total
