"""The ``csv`` trigger: CSV files dropped into a folder become events, one per row.

::

    trigger:
      csv:
        path: "inbox/loans/*.csv"   # a glob, relative to the config file's folder
        settle: 2s                  # a file is complete once its size has not changed this long
        delimiter: ";"              # default: detected among , ; TAB |
        encoding: cp1252            # default: BOM, else UTF-8 if the whole file is, else cp1252
        header_map: {phone: Mobile}  # event field <- column (or a list of alternative columns)
        batch: 1000                 # rows per ledger transaction
        done_dir: done              # where finished files go (relative to the file's folder)
        failed_dir: failed          # where unreadable files go

A file is read once it is complete: renamed into the folder after it was written (its change
time is later than its modification time, which is what renaming a finished temp file leaves),
or unchanged in size and modification time for ``settle``. Its content hash and the last
committed row are the trigger's progress, committed with the notifications of each batch: the
same content dropped again is not read twice, and after a crash a file resumes after its last
committed row.
"""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import watchfiles

from nextstep.adapters.triggers.config import read_progress
from nextstep.adapters.triggers.csv.detect import FileFacts, inspect_file
from nextstep.adapters.triggers.csv.reader import (
    ERRORS_SUFFIX,
    BadRow,
    Batch,
    CsvFile,
    CsvUnreadable,
    ErrorSink,
    FileSummary,
    dry_rows,
    errors_path,
    failed_rows,
    missing_columns_problem,
    move_with_errors,
    quarantine_file,
    tally,
)
from nextstep.adapters.triggers.csv.settings import CONFIG_SCHEMA, parse_settings, read_settings
from nextstep.engine.errors import NextstepError
from nextstep.engine.metrics import EVENTS_REFUSED
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import (
    ConfigProblem,
    Emit,
    EventFields,
    EventResult,
    FileRow,
    TriggerContext,
)

log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")
_RESCAN = 60.0  # seconds: a safety net for filesystems whose change notifications get lost


@dataclass(slots=True)
class _Seen:
    """A file's size and mtime, and since when (trigger clock) they have not changed."""

    signature: tuple[int, int]
    since: float


class CsvTrigger:
    """Watches a glob and turns each complete CSV file's rows into events."""

    kind: ClassVar[str] = "csv"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA
    file_suffixes: ClassVar[tuple[str, ...]] = (".csv", ".tsv", ".txt")

    @staticmethod
    def file_config(path: Path) -> Mapping[str, Any]:
        """Read one file with the defaults (delimiter and encoding detected)."""
        return {"path": path.name}

    @staticmethod
    def read_rows(config: Mapping[str, Any], path: Path) -> Iterator[FileRow]:
        """The rows of ``path`` as :meth:`ingest` would read them, writing nothing."""
        return dry_rows(parse_settings(config).options, path, CsvTrigger.source_key(config))

    @staticmethod
    def source_key(config: Mapping[str, Any]) -> str:
        """Rules with the same ``path`` glob share one trigger."""
        return str(config.get("path", ""))

    @staticmethod
    def shared_source(config: Mapping[str, Any]) -> str:
        """The folder's identity for the one worker that reads it (``ReadsOneAtATime``)."""
        return f"files:{config.get('path', '')}"

    @staticmethod
    def check(config: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
        """What the constructor would refuse (an unknown encoding, a bad header map…)."""
        return read_settings(config)[1]

    @staticmethod
    def event_fields(config: Mapping[str, Any]) -> EventFields | None:
        """The fields ``header_map`` names (``DeclaresFields``); open: the file's other columns
        are fields too, so only a near miss of a mapped name is a problem."""
        mapped = config.get("header_map")
        if not isinstance(mapped, Mapping) or not mapped:
            return None
        return EventFields(frozenset(map(str, mapped)), False, "the csv trigger's header_map")

    @staticmethod
    def _settings(config: Mapping[str, Any]) -> Any:
        """The block read (a subclass reading other files has its own settings)."""
        return parse_settings(config)

    @staticmethod
    def _inspect(path: Path, options: Any) -> FileFacts:
        """The file's hash, size and encoding (raises LookupError for an unknown one)."""
        return inspect_file(path, options.encoding)

    @staticmethod
    def _open(path: Path, facts: FileFacts, options: Any) -> CsvFile:
        """The file positioned on its first data row (raises CsvUnreadable)."""
        return CsvFile(path, facts, options)

    def __init__(self, config: Mapping[str, Any], context: TriggerContext) -> None:
        self.settings = self._settings(config)
        self.context = context
        self.source = self.source_key(config)
        base = Path(context.base_dir)
        self.pattern = str(base / self.settings.pattern)
        self.root = self._watch_root()
        # Subfolders matter when a wildcard stands for a folder (``in/*/x.csv``, ``in/**/x``).
        self._recursive = len(Path(self.pattern).parts) - 1 > len(self.root.parts)
        self._seen: dict[Path, _Seen] = {}
        self._handled: dict[Path, tuple[int, int]] = {}
        self._stats: dict[str, Any] = {
            "files": 0,
            "rows": 0,
            "scans": 0,
            "last_file": None,
            "last_error": None,
        }

    # -- the daemon's side ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Files waiting to settle, files and rows done, the last problem (for health)."""
        return {**self._stats, "pending": sorted(str(p) for p in self._seen)}

    async def run(self, emit: Emit) -> None:
        """Read the files already there, then every complete new file, until cancelled."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        woken = asyncio.Event()
        watcher = asyncio.create_task(self._watch(self.root, woken))
        # One turn of the loop lets the watcher register its inotify watch (synchronously, in
        # its first step), so a file arriving during the first scan still wakes us.
        await asyncio.sleep(0)
        try:
            while True:
                woken.clear()
                wait = await self._scan_once(emit)
                sleeper = asyncio.create_task(self.context.clock.sleep(wait))
                waker = asyncio.create_task(woken.wait())
                try:
                    await asyncio.wait(
                        {sleeper, waker, watcher}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    sleeper.cancel()
                    waker.cancel()
                if watcher.done():  # the folder went away: let the daemon restart us
                    watcher.result()
                    raise NextstepError(f"{self.kind}: stopped watching {self.root}")
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def _watch_root(self) -> Path:
        """The deepest folder of the glob without wildcards: what to watch."""
        fixed: list[str] = []
        for part in Path(self.pattern).parts[:-1]:
            if _GLOB_CHARS & set(part):
                break
            fixed.append(part)
        return Path(*fixed) if fixed else Path(".")

    async def _watch(self, root: Path, woken: asyncio.Event) -> None:
        stop = asyncio.Event()
        try:
            async for _ in watchfiles.awatch(
                root, watch_filter=None, stop_event=stop, recursive=self._recursive
            ):
                woken.set()
        except asyncio.CancelledError:
            stop.set()
            raise

    async def _scan_once(self, emit: Emit) -> float:
        """Process every complete file; return how long to wait before looking again."""
        self._stats["scans"] += 1
        if not await asyncio.to_thread(self.root.is_dir):
            # Its watch went with it: the daemon restarts this trigger, which recreates both.
            raise NextstepError(f"{self.kind}: the folder {self.root} disappeared")
        candidates = await asyncio.to_thread(self._candidates)
        now = self.context.clock.now()
        wait = _RESCAN
        for path, (signature, renamed) in candidates.items():
            if self._handled.get(path) == signature:
                continue
            seen = self._seen.get(path)
            if seen is None or seen.signature != signature:
                seen = self._seen[path] = _Seen(signature, now)
            remaining = self.settings.settle - (now - seen.since)
            if renamed or remaining <= 0:
                del self._seen[path]
                await self._handle(path, emit)
                self._handled[path] = signature
            else:
                wait = min(wait, remaining)
        for gone in set(self._seen) - set(candidates):
            del self._seen[gone]
        for gone in set(self._handled) - set(candidates):
            del self._handled[gone]
        return wait

    def _candidates(self) -> dict[Path, tuple[tuple[int, int], bool]]:
        """Matching files with their (size, mtime) and whether they were renamed in."""
        found: dict[Path, tuple[tuple[int, int], bool]] = {}
        for name in sorted(glob.glob(self.pattern, recursive=True)):
            path = Path(name)
            if name.endswith(ERRORS_SUFFIX) or self._is_archived(path):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if not path.is_file():
                continue
            found[path] = ((st.st_size, st.st_mtime_ns), st.st_ctime_ns > st.st_mtime_ns)
        return found

    def _is_archived(self, path: Path) -> bool:
        """Whether ``path`` lies in a ``done``/``failed`` folder (a recursive glob sees them)."""
        for folder in (self.settings.done, self.settings.failed):
            if os.path.isabs(folder):
                if path.is_relative_to(folder):
                    return True
            elif folder in path.relative_to(self.root).parent.parts:
                return True
        return False

    async def _handle(self, path: Path, emit: Emit) -> None:
        """Ingest one complete file, then move it to ``done/`` (or ``failed/``)."""
        try:
            summary = await self.ingest(path, emit)
        except FileNotFoundError:
            log.warning("%s %s: the file disappeared while it was read", self.kind, path)
            return
        except OSError as exc:
            summary = FileSummary(str(path), failed=f"{type(exc).__name__}: {exc}")
        folder = self.settings.failed if summary.failed else self.settings.done
        try:
            moved = await asyncio.to_thread(move_with_errors, path, folder)
        except OSError as exc:
            # Left in place, it is not read again (its progress says done) until it changes.
            self._stats["last_error"] = f"{path.name}: cannot move it to {folder}/: {exc}"
            log.error("%s %s: read, but cannot move it to %s/: %s", self.kind, path, folder, exc)
            return
        self._stats["files"] += 1
        self._stats["rows"] += summary.rows
        self._stats["last_file"] = str(moved)
        self._log_file(path, moved, summary)

    def _log_file(self, path: Path, moved: Path, summary: FileSummary) -> None:
        """One line per file: INFO when every row was usable, WARNING otherwise."""
        for note in summary.notes:
            log.warning("%s %s: %s", self.kind, path, note)
        if summary.failed:
            self._stats["last_error"] = f"{path.name}: {summary.failed}"
            log.warning("%s %s: moved to %s: %s", self.kind, path, moved, summary.failed)
        elif summary.already_done:
            log.info(
                "%s %s: same content as a file already read; moved to %s", self.kind, path, moved
            )
        else:
            level = logging.WARNING if summary.errors else logging.INFO
            errors = f" (bad rows and reasons: {summary.errors_file})" if summary.errors else ""
            log.log(
                level,
                "%s %s: %d rows, %d queued, %d skipped, %d duplicates, %d errors%s; moved to %s",
                self.kind,
                path,
                summary.rows,
                summary.queued,
                summary.skipped,
                summary.duplicates,
                summary.errors,
                errors,
                moved,
            )

    # -- one file (the daemon and ``nextstep ingest``) -------------------------------------
    async def ingest(
        self,
        path: Path,
        emit: Emit,
        *,
        progress_prefix: str | None = None,
        on_batch: Callable[[FileSummary, int, int], None] | None = None,
    ) -> FileSummary:
        """Run every row of ``path`` through ``emit`` in batches, each committed with the
        file's progress; bad rows go to ``<file>.errors.csv``. The file is not moved.

        ``on_batch(summary, bytes_read, size)`` is called after every committed batch.
        Raises only what ``emit`` raises and OSError; an unreadable file is reported in
        ``summary.failed``.
        """
        summary = FileSummary(str(path))
        options = self.settings.options
        try:
            facts = await asyncio.to_thread(self._inspect, path, options)
        except LookupError as exc:
            summary.failed = f"unknown encoding: {exc}"
            return summary
        if facts.problem:
            return await self._unreadable(path, summary, facts.problem)
        key = f"{progress_prefix or self.kind + ':' + self.source}:{facts.sha256}"
        state = json.loads(await read_progress(self.context, key) or "{}")
        if state.get("done"):
            summary.already_done = True
            return summary
        summary.resumed_after = skip = int(state.get("row", 0))
        try:
            csv_file = await asyncio.to_thread(self._open, path, facts, options)
        except CsvUnreadable as exc:
            return await self._unreadable(path, summary, str(exc))
        summary.notes.extend(csv_file.notes)
        sink = ErrorSink(errors_path(path), csv_file.header, csv_file.delimiter)
        try:
            await self._rows(csv_file, skip, key, emit, sink, summary, on_batch)
            read_through = True
        except CsvUnreadable as exc:
            read_through = False
            summary.failed = f"the rest of the file is unreadable: {exc}"
            EVENTS_REFUSED.labels(self.source, "unreadable").inc()
            await asyncio.to_thread(sink.write, [BadRow(0, 0, f"file unreadable: {exc}", [])])
        finally:
            if summary.missing:
                await self._missing_columns(csv_file, sink, summary)
            await asyncio.to_thread(sink.close)
            await asyncio.to_thread(csv_file.close)
        if sink.count:
            summary.errors_file = str(sink.path)
        if read_through:
            done = json.dumps({"row": summary.resumed_after + summary.rows, "done": True})
            await emit([], [Progress(key, done)])
        return summary

    async def _unreadable(self, path: Path, summary: FileSummary, reason: str) -> FileSummary:
        """A file that is no CSV at all: why, in its errors file; it goes to ``failed/``."""
        summary.failed = reason
        EVENTS_REFUSED.labels(self.source, "unreadable").inc()
        await asyncio.to_thread(quarantine_file, path, reason)
        summary.errors_file = str(errors_path(path))
        return summary

    async def _missing_columns(
        self, csv_file: CsvFile, sink: ErrorSink, summary: FileSummary
    ) -> None:
        """Rules needed columns the file lacks: one file-level error (not one per row), and
        the file goes to ``failed/``."""
        problem = missing_columns_problem(summary.missing, csv_file.header)
        summary.failed = summary.failed or problem
        EVENTS_REFUSED.labels(self.source, "missing_column").inc()
        await asyncio.to_thread(sink.write, [BadRow(0, 0, f"file: {problem}", [])])

    async def _rows(
        self,
        csv_file: CsvFile,
        skip: int,
        key: str,
        emit: Emit,
        sink: ErrorSink,
        summary: FileSummary,
        on_batch: Callable[[FileSummary, int, int], None] | None,
    ) -> None:
        read_next = partial(self._next_batch, csv_file.batches(skip), csv_file.path.name)
        pending = asyncio.ensure_future(asyncio.to_thread(read_next))
        # Three stages overlap: the next batch is parsed (a thread) while this one is rendered
        # and the one before it is committed (the ledger's thread). The engine commits the
        # batches of one progress key in order, each only if the one before it was committed.
        writing: tuple[Batch, asyncio.Future[list[EventResult]]] | None = None
        try:
            while (ready := await pending) is not None:
                batch, events = ready
                pending = asyncio.ensure_future(asyncio.to_thread(read_next))
                value = json.dumps({"row": batch.last_row, "done": False})
                emitted = asyncio.ensure_future(emit(events, [Progress(key, value)]))
                previous, writing = writing, (batch, emitted)
                if previous is not None:
                    await self._settle(*previous, csv_file, sink, summary, on_batch)
            if writing is not None:
                await self._settle(*writing, csv_file, sink, summary, on_batch)
                writing = None
        finally:
            # Never leave the reader thread running on a file about to be closed, nor a batch
            # handed over still running (it commits only if the one before it did).
            await asyncio.gather(pending, return_exceptions=True)
            if writing is not None:
                await asyncio.gather(writing[1], return_exceptions=True)

    async def _settle(
        self,
        batch: Batch,
        emitted: asyncio.Future[list[EventResult]],
        csv_file: CsvFile,
        sink: ErrorSink,
        summary: FileSummary,
        on_batch: Callable[[FileSummary, int, int], None] | None,
    ) -> None:
        """Wait for a batch's commit, then count it and file its bad rows."""
        results = await emitted
        unrendered = failed_rows(batch, results, csv_file.fields, summary.missing)
        tally(summary, batch, results)
        self._count_refused(batch.bad, unrendered)
        bad = batch.bad + unrendered
        if bad:
            bad.sort(key=lambda b: b.row)
            await asyncio.to_thread(sink.write, bad)
        if on_batch is not None:
            on_batch(summary, batch.bytes_read, csv_file.facts.size)

    def _count_refused(self, unusable: list[BadRow], unrendered: list[BadRow]) -> None:
        """Count quarantined rows by reason (logged once per file, by :meth:`_log_file`)."""
        oversized = sum(1 for b in unusable if "max_field_size" in b.reason)
        for reason, count in (
            ("field_too_large", oversized),
            ("bad_row", len(unusable) - oversized),
            ("render_error", len(unrendered)),
        ):
            if count:
                EVENTS_REFUSED.labels(self.source, reason).inc(count)

    def _event_trigger(self, name: str) -> dict[str, Any]:
        """What every event's ``trigger`` holds (``row`` and ``line`` are added per row)."""
        return {"kind": self.kind, "source": self.source, "file": name}

    def _next_batch(self, batches: Iterator[Batch], name: str) -> tuple[Batch, list[Event]] | None:
        """The next batch of rows and their events (runs in a worker thread)."""
        batch = next(batches, None)
        if batch is None:
            return None
        base = self._event_trigger(name)
        events = [
            Event(data, {**base, "row": number, "line": line}) for number, line, data in batch.rows
        ]
        return batch, events
