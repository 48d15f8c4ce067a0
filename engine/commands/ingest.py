"""``nextstep ingest FILE --rule RULE``: one file through the full pipeline.

The file is read by an installed trigger that reads files (the ``ReadsFiles`` ability), chosen
by the file's suffix: the rule's own trigger, with the rule's settings, when it is of that kind.
Every row is offered to RULE (matched, rendered, written to the ledger in batches, each batch
committed with the file's progress), with a progress bar; the trigger files the bad rows away.
The file's content hash and last committed row are kept per rule, so running the same file
again does nothing and a run that was killed resumes where it stopped. Then, unless
``--no-wait``, the notifications are sent and the command waits until each one is accepted or
has failed for good.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from nextstep.engine.clock import Clock, SystemClock
from nextstep.engine.commands import EXIT_INVALID, config_option, dryrun, load
from nextstep.engine.commands.render import find_rule
from nextstep.engine.delivery.fallbacks import policy_context
from nextstep.engine.delivery.timers import after_attempts
from nextstep.engine.errors import UsageError
from nextstep.engine.intake.arrivals import Arrivals
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.intake.idruns import IdRuns
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.plugins import (
    Channel,
    Emit,
    FileReader,
    FileSummary,
    ReadsFiles,
    TriggerContext,
    channel_class,
    installed,
    trigger_class,
)
from nextstep.engine.plugins.registry import TRIGGERS, PluginUnavailable
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.rule import Rule
from nextstep.engine.runtime.gctune import tuned_gc
from nextstep.engine.sending.dispatcher import Dispatcher
from nextstep.engine.sending.feed import IdFeed
from nextstep.engine.sending.ratelimit import channel_limits

WAIT_CHUNK = 5000  # notification ids per dispatcher (they become one SQL IN list)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rule", "rule_id", required=True, help="The rule every row is offered to.")
@click.option("--no-wait", is_flag=True, help="Return once queued; the daemon sends them.")
@click.option(
    "--dry-run", is_flag=True, help="Read the file and show what each row would do; write nothing."
)
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="With --dry-run: the matched rows whose message is shown.",
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print JSON.")
@config_option
def ingest(
    file: Path,
    rule_id: str,
    no_wait: bool,
    dry_run: bool,
    show: int,
    as_json: bool,
    config_path: Path,
) -> None:
    """Run one FILE (an export) through RULE: queue its rows, then send them and wait."""
    config = load(config_path)
    rule = find_rule(config, rule_id)
    if dry_run:
        kind, settings = file_reader(rule, file)
        summary, reports = dryrun.dry_run(config, rule, file, kind, settings, show)
        (dryrun.print_json if as_json else dryrun.print_text)(file, rule, summary, reports)
        if summary.errors or summary.problems:
            raise SystemExit(EXIT_INVALID)
        return
    if as_json:
        raise UsageError("--json goes with --dry-run")
    done = asyncio.run(run_ingest(config, rule, file, wait=not no_wait))
    if done.failed or done.errors:
        raise SystemExit(EXIT_INVALID)


async def run_ingest(
    config: Config, rule: Rule, file: Path, *, wait: bool = True, clock: Clock | None = None
) -> FileSummary:
    """Ingest ``file`` for ``rule`` into the configured ledger; print the summary (and, when
    ``wait``, the final states)."""
    clock = clock or SystemClock()
    runner = LedgerRunner(open_store(config.store))
    try:
        store = runner.store
        since = clock.now()
        await runner.call(store.save_rule_version, rule.id, rule.version, rule.definition)
        emit = make_emit(runner, [rule], clock, config.default_country)
        with tuned_gc():  # start-up is over: keep the collector off the per-row path
            if not wait:
                summary = await _ingest_file(config, rule, file, emit, clock, runner)
                click.echo(describe(file, rule, summary))
                return summary
            # Sending starts with the first committed batch, while the rest is read.
            started = time.monotonic()
            arrivals = Arrivals(WAIT_CHUNK)
            sending = asyncio.create_task(wait_for_sending(config, rule, runner, arrivals, clock))
            try:
                summary = await _ingest_file(config, rule, file, emit, clock, runner, arrivals)
                # Every id, also from a reader that reports no batches (``on_batch`` unused).
                arrivals.update(summary.notification_ids)
            except BaseException:
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
                raise
            finally:
                arrivals.close()
            click.echo(describe(file, rule, summary))
            if summary.notification_ids:
                click.echo(f"sending {len(summary.notification_ids):,} notifications…")
            stuck = await sending
            if summary.notification_ids:
                counts = await runner.call(store.counts, since, rule.id)
                states = {state: n for (_, state), n in counts.items()}
                click.echo(describe_states(states, time.monotonic() - started))
                for line in stuck:
                    click.echo(line)
    finally:
        await asyncio.to_thread(runner.close)
    return summary


def file_reader(rule: Rule, file: Path) -> tuple[str, Mapping[str, Any]]:
    """The trigger that reads ``file`` for ``rule``: its kind and its settings."""
    suffix = file.suffix.lower()
    # The rule's own trigger first: loading every installed trigger (a database driver, a
    # spreadsheet reader…) costs more start-up than a 10,000-row file takes to read.
    try:
        own_class: Any = trigger_class(rule.trigger_kind)
    except PluginUnavailable:
        own_class = None
    if isinstance(own_class, ReadsFiles) and suffix in own_class.file_suffixes:
        return rule.trigger_kind, rule.trigger_config
    plugins, _ = installed(TRIGGERS)
    readers = {k: p for k, p in sorted(plugins.items()) if isinstance(p, ReadsFiles)}
    own = readers.get(rule.trigger_kind)
    by_suffix = [kind for kind, plugin in readers.items() if suffix in plugin.file_suffixes]
    if own is not None and (rule.trigger_kind in by_suffix or not by_suffix):
        return rule.trigger_kind, rule.trigger_config
    if by_suffix or len(readers) == 1:
        kind = by_suffix[0] if by_suffix else next(iter(readers))
        return kind, readers[kind].file_config(file)
    listed = "; ".join(f"{k}: {' '.join(p.file_suffixes)}" for k, p in readers.items())
    raise UsageError(f"no installed trigger reads {file.name} ({listed or 'none reads files'})")


async def _ingest_file(
    config: Config,
    rule: Rule,
    file: Path,
    emit: Emit,
    clock: Clock,
    runner: LedgerRunner,
    arrivals: Arrivals | None = None,
) -> FileSummary:
    kind, settings = file_reader(rule, file)
    context = TriggerContext(runner.store, clock, str(config.base_dir), (rule.id,))
    trigger = trigger_class(kind)(settings, context)
    if not isinstance(trigger, FileReader):
        raise UsageError(f"the {kind} trigger cannot read one given file")
    started = time.monotonic()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]:>10,} rows  {task.fields[rate]:>8,.0f} rows/s  ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(file.name, total=file.stat().st_size or 1, rows=0, rate=0.0)

        def on_batch(summary: Any, done: int, size: int) -> None:
            rate = summary.rows / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, rows=summary.rows, rate=rate)
            if arrivals is not None:
                arrivals.update(summary.notification_ids)

        prefix = f"{kind}:rule:{rule.id}"
        summary = await trigger.ingest(file, emit, progress_prefix=prefix, on_batch=on_batch)
        _finish(bar, task, summary, started)
    return summary


def _finish(bar: Progress, task: TaskID, summary: FileSummary, started: float) -> None:
    rate = summary.rows / max(time.monotonic() - started, 1e-6)
    total = bar.tasks[0].total or 0
    bar.update(task, completed=total, rows=summary.rows, rate=rate)


def describe(file: Path, rule: Rule, summary: FileSummary) -> str:
    """The one-paragraph summary printed after the file."""
    if summary.already_done:
        return f"{file}: already ingested for rule {rule.id} (same content); nothing to do"
    if summary.failed and not summary.rows:
        return f"{file}: unreadable: {summary.failed}"
    resumed = f" (resumed after row {summary.resumed_after:,})" if summary.resumed_after else ""
    lines = [
        f"{file}: {summary.rows:,} rows{resumed}",
        f"  queued               {summary.queued:>10,}",
        f"  skipped by condition {summary.skipped:>10,}",
        f"  duplicates           {summary.duplicates:>10,}",
        f"  errors               {summary.errors:>10,}",
    ]
    lines += [f"  note: {note}" for note in summary.notes]
    if summary.errors_file:
        lines.append(f"  bad rows and reasons: {summary.errors_file}")
    if summary.failed:
        lines.append(f"  failed: {summary.failed}")
    return "\n".join(lines)


def describe_states(counts: Mapping[str, int], seconds: float) -> str:
    """``done in 12.3 s: failed 10, sent 940`` (states of the rule's notifications created by
    this run)."""
    shown = ", ".join(f"{state} {n:,}" for state, n in sorted(counts.items()))
    return f"done in {seconds:.1f} s: {shown}"


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    # One chunk at a time: a file's ids are runs (IdRuns), never one list of every id.
    if isinstance(ids, IdRuns):
        yield from ids.chunks(size)
        return
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _channels_of(config: Config, rule: Rule, clock: Clock) -> dict[str, Channel]:
    names = {rule.send.channel} | {step.send.channel for step in rule.policy.fallback}
    return {
        name: channel_class(config.channels[name].type)(
            name, config.channels[name].settings, clock=clock
        )
        for name in sorted(names)
        if name in config.channels
    }


async def wait_for_sending(
    config: Config,
    rule: Rule,
    runner: LedgerRunner,
    ids: Sequence[int] | Arrivals,
    clock: Clock,
) -> list[str]:
    """Send ``ids`` until each is accepted or failed for good (retries included). Returns a
    line per channel whose circuit opened (its notifications stay queued for the daemon).

    ``Arrivals``: ids that arrive while a file is read; they are sent as they come (one
    dispatcher, no pause between windows), then what that pass left (a retry due later, a
    notification given back) is sent over all of them as for fixed ids."""
    chans = _channels_of(config, rule, clock)
    configured = config.channels
    limits = {n: channel_limits(configured[n].type, configured[n].settings) for n in chans}
    # Failures get their fallback notification (and kept acks apply) as the daemon does; the
    # fallbacks themselves are sent by the daemon.
    settle = after_attempts(policy_context(config))

    def dispatcher_of(these: Collection[int] | IdFeed) -> Dispatcher:
        return Dispatcher(
            runner, chans, lambda n: rule.policy.retry, clock, limits, ids=these, after_write=settle
        )

    try:
        if isinstance(ids, Arrivals):
            dispatcher = dispatcher_of(ids)
            await dispatcher.run_until_idle()
            if stuck := _opened(dispatcher):
                return stuck
            ids = ids.ids
        for chunk in _chunks(ids, WAIT_CHUNK):
            dispatcher = dispatcher_of(chunk)
            while True:
                await dispatcher.run_until_idle()
                if stuck := _opened(dispatcher):
                    return stuck
                due = await runner.call(runner.store.next_due, list(chans), chunk)
                if due is None:
                    break
                await clock.sleep(max(0.0, due - clock.now()))
    finally:
        for channel in chans.values():
            await channel.aclose()
    return []


def _opened(dispatcher: Dispatcher) -> list[str]:
    """A line per channel whose circuit is open (its notifications stay queued)."""
    return [
        f"channel {name}: circuit open ({status.circuit.reason}); the rest stays queued"
        for name, status in dispatcher.status().items()
        if status.circuit.state == "open"
    ]
