"""CSV files that are not what they say: binary content, UTF-16/32 without a byte-order mark,
a column a rule needs missing, a field past the csv module's limit, repeated headers; and the
rows refused counted in /metrics."""

from __future__ import annotations

import logging
import os
import random
import zipfile
from pathlib import Path

import pytest

from nextstep.adapters.triggers.csv.trigger import CsvTrigger
from nextstep.engine.clock import FakeClock
from nextstep.engine.metrics import REGISTRY
from tests.support.fake_emit import FakeEmit, errors_when, fake_context
from tests.support.waiting import until
from tests.triggers.pipeline import pipeline, rule, write_config
from tests.triggers.waiting import running

TEXT = "first_name,phone,stage\r\nMaría,+34 600 111 222,docs\r\nZoë,+34 600 333 444,docs\r\n"


def refused(reason: str, trigger: str = "inbox/*.csv") -> float:
    value = REGISTRY.get_sample_value(
        "nextstep_events_refused_total", {"trigger": trigger, "reason": reason}
    )
    return value or 0.0


def make(
    tmp_path: Path, emit: FakeEmit, clock: FakeClock | None = None, **config: object
) -> CsvTrigger:
    return CsvTrigger({"path": "inbox/*.csv", **config}, fake_context(emit, str(tmp_path), clock))


def xlsx_bytes(tmp_path: Path) -> bytes:
    with zipfile.ZipFile(tmp_path / "book.zip", "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
    return (tmp_path / "book.zip").read_bytes()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(lambda p: random.Random(5).randbytes(50_000), "binary content", id="random"),
        pytest.param(lambda p: xlsx_bytes(p), ".xlsx", id="xlsx-renamed"),
        pytest.param(lambda p: b"%PDF-1.7\n" + bytes(2000), "PDF", id="pdf"),
        pytest.param(lambda p: b"\x7fELF" + bytes(3000), "binary content", id="executable"),
    ],
)
async def test_a_binary_file_goes_to_failed_with_its_reason(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture, content, fragment: str
) -> None:
    caplog.set_level(logging.INFO, "nextstep.adapters.triggers")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = content(tmp_path)
    (inbox / "export.csv").write_bytes(data)
    os.utime(inbox / "export.csv", (1, 1))  # long settled
    emit = FakeEmit()
    trigger = make(tmp_path, emit, clock, settle="0s")
    before = refused("unreadable")
    async with running(trigger, emit):
        await until(lambda: trigger.status()["files"] == 1)
    assert emit.events == []
    assert (inbox / "failed" / "export.csv").read_bytes() == data
    reason = (inbox / "failed" / "export.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert fragment in reason
    (line,) = [r for r in caplog.records if "export.csv" in r.getMessage()]
    assert line.levelno == logging.WARNING and fragment in line.getMessage()
    assert refused("unreadable") == before + 1


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
async def test_utf16_and_utf32_without_a_bom_are_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(TEXT.encode(encoding))
    emit = FakeEmit()
    summary = await make(tmp_path, emit).ingest(path, emit)
    assert summary.failed == "" and summary.rows == 2
    assert [d["first_name"] for d in emit.data()] == ["María", "Zoë"]


async def test_a_column_a_rule_needs_is_one_file_level_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, rule("docs", '{csv: {path: "inbox/*.csv"}}', when="true"))
    path = tmp_path / "a.csv"
    path.write_text(
        "application_id,stage,due_date,phone\n"
        + "".join(f"{i},docs_required,June 20,+34 600 111 {i:03d}\n" for i in range(50))
    )
    with pipeline(config, FakeClock()) as line:
        trigger = CsvTrigger({"path": "inbox/*.csv"}, line.context("docs"))
        before = refused("missing_column")
        summary = await trigger.ingest(path, line.emit("docs"))
        notifications = line.notifications()
    assert notifications == []
    assert (summary.rows, summary.errors) == (50, 50)
    assert "rule docs needs column 'first_name'" in summary.failed
    assert "the file's columns are: application_id, stage, due_date, phone" in summary.failed
    errors = (tmp_path / "a.csv.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(errors) == 2 and "first_name" in errors[1]  # the header and one line
    assert refused("missing_column") == before + 1


async def test_the_file_with_a_missing_column_goes_to_failed(
    tmp_path: Path, clock: FakeClock
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("name\nana\nbo\n")
    os.utime(inbox / "a.csv", (1, 1))
    emit = FakeEmit(
        lambda e: errors_when("name", e.data["name"], "params.1: 'event.phone' is undefined")(e)
    )
    trigger = make(tmp_path, emit, clock, settle="0s")
    async with running(trigger, emit):
        await until(lambda: trigger.status()["files"] == 1)
    assert (inbox / "failed" / "a.csv").exists()
    assert "needs column 'phone'" in trigger.status()["last_error"]


async def test_a_field_over_the_limit_costs_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    huge = "x" * 200_000  # over the csv module's own limit (131,072)
    path.write_text(f'name,note\nana,short\nbo,"{huge}"\ncy,fine\ndee,{"y" * 5000}\ned,last\n')
    emit = FakeEmit()
    before = refused("field_too_large", "*.csv")
    trigger = CsvTrigger({"path": "*.csv"}, fake_context(emit, str(tmp_path)))
    summary = await trigger.ingest(path, emit)
    assert summary.failed == ""
    assert [d["name"] for d in emit.data()] == ["ana", "bo", "cy", "dee", "ed"]

    emit = FakeEmit()
    path.rename(tmp_path / "b.csv")
    strict = CsvTrigger(
        {"path": "*.csv", "max_field_size": 1000}, fake_context(emit, str(tmp_path))
    )
    summary = await strict.ingest(tmp_path / "b.csv", emit)
    assert summary.failed == "" and (summary.rows, summary.errors) == (5, 2)
    assert [d["name"] for d in emit.data()] == ["ana", "cy", "ed"]
    errors = (tmp_path / "b.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert "over 1,000 (the trigger's max_field_size)" in errors
    assert refused("field_too_large", "*.csv") == before + 2


async def test_a_field_over_every_limit_is_quarantined_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    huge = "z" * 3_000_000  # over the process-wide limit too: the csv module refuses it
    path.write_text(f"name,note\nana,short\nbo,{huge}\ncy,fine\n")
    emit = FakeEmit()
    trigger = CsvTrigger({"path": "*.csv"}, fake_context(emit, str(tmp_path)))
    summary = await trigger.ingest(path, emit)
    assert summary.failed == "" and (summary.rows, summary.errors) == (3, 1)
    assert [d["name"] for d in emit.data()] == ["ana", "cy"]
    errors = (tmp_path / "a.csv.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[1].startswith("2,3,") and "max_field_size" in errors[1]


async def test_repeated_headers_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, "nextstep.adapters.triggers")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("Phone,name,phone\n+34600111222,ana,+34600999999\n")
    os.utime(inbox / "a.csv", (1, 1))
    emit = FakeEmit()
    trigger = make(tmp_path, emit, clock, settle="0s")
    async with running(trigger, emit):
        await until(lambda: trigger.status()["files"] == 1)
    assert emit.data() == [{"phone": "+34600111222", "name": "ana", "phone_2": "+34600999999"}]
    (note,) = [r.getMessage() for r in caplog.records if "both event.phone" in r.getMessage()]
    assert "'Phone' and 'phone'" in note and "event.phone_2" in note


async def test_quarantined_rows_are_counted_and_the_file_logged_once(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "nextstep.adapters.triggers")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("name,phone\nana,+34600000001\nbo,bad\ncy\ndee,+34600000003\n")
    os.utime(inbox / "a.csv", (1, 1))
    emit = FakeEmit(errors_when("phone", "bad"))
    trigger = make(tmp_path, emit, clock, settle="0s")
    before = (refused("bad_row"), refused("render_error"))
    async with running(trigger, emit):
        await until(lambda: trigger.status()["files"] == 1)
    assert (refused("bad_row"), refused("render_error")) == (before[0] + 1, before[1] + 1)
    (line,) = [r for r in caplog.records if "a.csv" in r.getMessage()]
    assert line.levelno == logging.WARNING and "2 errors" in line.getMessage()
