"""The csv trigger watching a real folder: complete files only, done/ and failed/, re-drops."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from nextstep.adapters.triggers.csv.trigger import CsvTrigger
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import NextstepError
from tests.support.fake_emit import FakeEmit, errors_when, fake_context
from tests.support.waiting import until
from tests.triggers.waiting import running

CONTENT = "name,phone\r\nana,+34600000001\r\nbo,bad\r\ncy,+34600000003\r\n"


def make(tmp_path: Path, clock: FakeClock, emit: FakeEmit, **config: object) -> CsvTrigger:
    return CsvTrigger(
        {"path": "inbox/*.csv", "settle": "2s", **config}, fake_context(emit, str(tmp_path), clock)
    )


def idle(trigger: CsvTrigger, clock: FakeClock, scans: int = 1) -> bool:
    """The trigger has scanned at least ``scans`` times and waits (on the clock) again."""
    return trigger.status()["scans"] >= scans and clock.sleepers == 1


def drop_renamed(folder: Path, name: str, content: str | bytes) -> Path:
    """Write a temp file, finish it, then rename it in: how careful producers deliver."""
    temp = folder / f".{name}.part"
    temp.write_bytes(content.encode() if isinstance(content, str) else content)
    written = temp.stat().st_mtime - 5
    os.utime(temp, (written, written))
    target = folder / name
    os.rename(temp, target)
    return target


async def test_files_present_at_start_are_read_and_moved(tmp_path: Path, clock: FakeClock) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(CONTENT)
    (inbox / "notes.txt").write_text("not a csv")
    emit = FakeEmit(errors_when("phone", "bad"))
    trigger = make(tmp_path, clock, emit)
    async with running(trigger, emit):
        await until(lambda: idle(trigger, clock) and "inbox/a.csv" in str(trigger.status()))
        assert emit.events == []  # not settled yet: written just now, not renamed in
        clock.advance(2)
        await until(lambda: trigger.status()["files"] == 1)
    assert [d["name"] for d in emit.data()] == ["ana", "bo", "cy"]
    assert not (inbox / "a.csv").exists() and (inbox / "notes.txt").exists()
    errors = (inbox / "done" / "a.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert "bo,bad" in errors and "bad phone" in errors
    assert trigger.status()["files"] == 1 and trigger.status()["rows"] == 3


async def test_a_renamed_in_file_is_read_at_once(tmp_path: Path, clock: FakeClock) -> None:
    emit = FakeEmit()
    trigger = make(tmp_path, clock, emit, settle="1h")
    async with running(trigger, emit):
        await until(lambda: idle(trigger, clock))
        drop_renamed(tmp_path / "inbox", "a.csv", CONTENT)
        await until(lambda: (tmp_path / "inbox" / "done" / "a.csv").exists())
    assert len(emit.events) == 3


async def test_a_file_still_being_written_is_not_read_early(
    tmp_path: Path, clock: FakeClock
) -> None:
    emit = FakeEmit()
    trigger = make(tmp_path, clock, emit)
    inbox = tmp_path / "inbox"
    async with running(trigger, emit):
        await until(lambda: idle(trigger, clock))
        path = inbox / "big.csv"
        path.write_text(CONTENT[:30])  # the producer has written part of the file
        await until(lambda: str(path) in trigger.status()["pending"] and clock.sleepers == 1)
        clock.advance(1.5)
        with path.open("a") as f:
            f.write(CONTENT[30:])  # …and goes on writing: the settle time starts again
        scans = trigger.status()["scans"]
        await until(lambda: idle(trigger, clock, scans + 1))
        clock.advance(1.0)  # 2.5 s after it appeared, but only 1 s after its last change
        scans = trigger.status()["scans"]
        (inbox / "wake.txt").write_text("make the trigger look again")
        await until(lambda: idle(trigger, clock, scans + 1))
        assert emit.events == [] and str(path) in trigger.status()["pending"]
        clock.advance(1.0)
        await until(lambda: (inbox / "done" / "big.csv").exists())
    assert [d["name"] for d in emit.data()] == ["ana", "bo", "cy"]


async def test_the_same_content_dropped_again_is_ignored(tmp_path: Path, clock: FakeClock) -> None:
    emit = FakeEmit()
    trigger = make(tmp_path, clock, emit)
    inbox = tmp_path / "inbox"
    async with running(trigger, emit):
        await until(lambda: idle(trigger, clock))
        drop_renamed(inbox, "monday.csv", CONTENT)
        await until(lambda: (inbox / "done" / "monday.csv").exists())
        drop_renamed(inbox, "monday.csv", CONTENT)
        await until(lambda: trigger.status()["files"] == 2)
    assert (inbox / "done" / "monday.1.csv").exists()
    assert len(emit.events) == 3
    assert trigger.status()["files"] == 2


async def test_an_unreadable_file_goes_to_failed(tmp_path: Path, clock: FakeClock) -> None:
    emit = FakeEmit()
    trigger = make(tmp_path, clock, emit, encoding="utf-8", failed_dir="rejected")
    inbox = tmp_path / "inbox"
    async with running(trigger, emit):
        await until(lambda: idle(trigger, clock))
        drop_renamed(inbox, "latin.csv", "name\nJosé\n".encode("cp1252"))
        await until(lambda: trigger.status()["files"] == 1)
    assert emit.events == []
    reason = (inbox / "rejected" / "latin.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert "UnicodeDecodeError" in reason
    assert "latin.csv" in trigger.status()["last_error"]


async def test_a_recursive_glob_skips_done_and_failed(tmp_path: Path, clock: FakeClock) -> None:
    emit = FakeEmit()
    trigger = make(tmp_path, clock, emit, path="inbox/**/*.csv")
    inbox = tmp_path / "inbox"
    (inbox / "north").mkdir(parents=True)
    async with running(trigger, emit):
        await until(lambda: idle(trigger, clock))
        drop_renamed(inbox / "north", "a.csv", CONTENT)
        await until(lambda: (inbox / "north" / "done" / "a.csv").exists())
        scans = trigger.status()["scans"]
        (inbox / "wake.txt").write_text("look again")
        await until(lambda: idle(trigger, clock, scans + 1))
    assert len(emit.events) == 3


async def test_a_removed_folder_stops_the_trigger_for_a_restart(
    tmp_path: Path, clock: FakeClock
) -> None:
    emit = FakeEmit()
    trigger = make(tmp_path, clock, emit)
    task = asyncio.create_task(trigger.run(emit))
    await until(lambda: idle(trigger, clock))
    shutil.rmtree(tmp_path / "inbox")
    with pytest.raises(NextstepError, match="disappeared"):
        await asyncio.wait_for(task, 10)
