"""``nextstep status``: what the ledger says, read over a second connection (SQLite WAL lets it
run beside the daemon).

Counts by rule and state over a window, one notification's full history (by id, provider id or
dedupe key), the in-doubt list, and, when a daemon is running, its triggers and channel circuits.
The daemon's part comes from the health snapshot the daemon writes into the ledger's progress
table every couple of seconds (key ``daemon:health``, the same JSON as ``GET /healthz``), so
status needs no network access and also works with a port chosen by the OS.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from nextstep.engine.commands import EXIT_INVALID, config_option, print_problems
from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import ConfigError, NextstepError
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import HistoryEntry, Notification, Store
from nextstep.engine.model import State
from nextstep.engine.redact import mask_phone, redact_outside, redact_tree
from nextstep.engine.rules.config import store_url as read_store_url

COLUMNS = (
    State.QUEUED,
    State.SENDING,
    State.SENT,
    State.DELIVERED,
    State.READ,
    State.FAILED,
    State.EXPIRED,
    State.SKIPPED,
    State.IN_DOUBT,
)
EXTRA_COLUMNS = (State.SUPERSEDED, State.CANCELLED)

store_option = click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="Ledger URL (overrides the config's store:, e.g. when nextstep.yaml cannot be read).",
)


@contextmanager
def open_ledger(config_path: Path, store_url: str | None) -> Iterator[Store]:
    """The ledger named by ``--store`` or the config's ``store:`` (read from nextstep.yaml alone,
    so that broken rules do not stop it); exit 1 with the problems (in the ``validate`` format)
    when even that cannot be read."""
    if store_url is None:
        try:
            store_url = read_store_url(config_path)
        except ConfigError as exc:
            print_problems(exc)
            click.echo(
                "the config's store: cannot be read; name the ledger with --store URL", err=True
            )
            raise SystemExit(EXIT_INVALID) from exc
    try:
        store = open_store(store_url)
    except NextstepError as exc:
        click.echo(f"cannot open the ledger: {exc}", err=True)
        raise SystemExit(1) from exc
    try:
        yield store
    finally:
        store.close()


def read_daemon(store: Store, now: float) -> dict[str, Any] | None:
    """The running daemon's health snapshot, or None when none was written recently."""
    # Here, not at the top: the server module brings the web stack, which every command
    # would otherwise load at start-up (``nextstep ingest`` included).
    from nextstep.engine.runtime.server import HEALTH_KEY, HEALTH_STALE_AFTER

    raw = store.get_progress(HEALTH_KEY)
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("status") == "stopped":
        return None
    if now - float(doc.get("updated_at", 0)) > HEALTH_STALE_AFTER:
        return None
    redacted: dict[str, Any] = redact_tree(doc)  # a snapshot of an older daemon too
    return redacted


WORKERS_SHOWN_FOR = 3600.0  # a worker that stopped or went silent is listed this long


def read_workers(store: Store, now: float) -> list[dict[str, Any]]:
    """Every worker of the ledger seen in the last hour: who, where, what it holds, when it
    was last seen, and whether it is alive (its lease not run out, not stopped)."""
    return [w.as_dict(now) for w in store.workers() if now - w.last_seen < WORKERS_SHOWN_FOR]


def counts_report(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """``{rule: {state: n}}`` with every column present (zeros included) and a total."""
    rules = sorted({rule for rule, _ in counts})
    extras = [s for s in EXTRA_COLUMNS if any(state == s for _, state in counts)]
    report: dict[str, dict[str, int]] = {}
    for rule in rules:
        row = {str(s): counts.get((rule, str(s)), 0) for s in (*COLUMNS, *extras)}
        row["total"] = sum(n for (r, _), n in counts.items() if r == rule)
        report[rule] = row
    return report


def notification_doc(n: Notification, history: list[HistoryEntry]) -> dict[str, Any]:
    """One notification and its history, JSON-ready, with the recipient masked."""
    return {
        "id": n.id,
        "rule": n.rule_id,
        "rule_version": n.rule_version,
        "channel": n.channel,
        "recipient": mask_phone(n.recipient),
        "state": str(n.state),
        "attempts": n.attempts,
        "created_at": n.created_at,
        "updated_at": n.updated_at,
        "next_attempt_at": n.next_attempt_at,
        "deadline_at": n.deadline_at,
        "valid_until": n.valid_until,
        "provider_id": n.provider_id,
        "dedupe_key": n.dedupe_key,
        "expect": n.expect,
        "parent_id": n.parent_id,
        "fallback_step": n.fallback_step,
        # Provider texts are redacted when stored; again here for rows stored before that.
        "reason": redact_outside(n.reason) if n.reason else n.reason,
        "failure_class": n.failure_class,
        "text": n.fields.get("text"),
        "history": [
            {"at": h.at, "kind": h.kind, "detail": redact_tree(dict(h.detail))} for h in history
        ],
    }


def lookup(store: Store, ident: str) -> list[Notification]:
    """Notifications named by an id, a provider id or a dedupe key (in that order)."""
    if ident.isdecimal():
        found = store.get(int(ident))
        if found is not None:
            return [found]
    return store.find(provider_id=ident) or store.find(dedupe_key=ident)


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


@click.command()
@click.argument("ident", required=False, metavar="[ID]")
@click.option("--rule", "rule_id", default=None, help="Only this rule.")
@click.option("--since", default="24h", show_default=True, help="Window for counts (1h, 7d…).")
@click.option("--in-doubt", "in_doubt", is_flag=True, help="List notifications in doubt.")
@click.option("--limit", default=100, show_default=True, help="Rows for --in-doubt.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@config_option
@store_option
def status(
    ident: str | None,
    rule_id: str | None,
    since: str,
    in_doubt: bool,
    limit: int,
    as_json: bool,
    config_path: Path,
    store_url: str | None,
) -> None:
    """Counts by rule and state, a history, what is in doubt."""
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    now = time.time()
    with open_ledger(config_path, store_url) as store:
        if ident is not None:
            found = lookup(store, ident)
            if not found:
                click.echo(
                    f"no notification with id, provider id or dedupe key {ident!r}", err=True
                )
                raise SystemExit(EXIT_INVALID)
            docs = [notification_doc(n, store.history(n.id)) for n in found]
            _emit(docs, as_json, _print_notifications)
            return
        if in_doubt:
            rows = [notification_doc(n, []) for n in store.list(state=State.IN_DOUBT, limit=limit)]
            _emit(rows, as_json, _print_in_doubt)
            return
        report = {
            "since": now - window,
            "window": since,
            "counts": counts_report(store.counts(since=now - window, rule_id=rule_id)),
            "queue_depth": store.queue_depth(now),
            "daemon": read_daemon(store, now),
            "workers": read_workers(store, now),
        }
        _emit(report, as_json, _print_summary)


def _emit(doc: Any, as_json: bool, human: Any) -> None:
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        human(Console(), doc)


def _print_summary(console: Console, report: dict[str, Any]) -> None:
    counts: dict[str, dict[str, int]] = report["counts"]
    # Only states that occur: nine columns of zeros do not fit a terminal (--json has all).
    columns = [
        c
        for c in (*map(str, COLUMNS), *map(str, EXTRA_COLUMNS))
        if any(row.get(c, 0) for row in counts.values())
    ]
    table = Table(
        title=f"Notifications created in the last {report['window']}", box=box.SIMPLE_HEAD
    )
    table.add_column("rule", overflow="fold", min_width=8)  # narrow: fold the rule, not a state
    for column in [*columns, "total"]:
        name = column.replace("_", " ")
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for rule, row in counts.items():
        table.add_row(rule, *(str(row.get(c, 0)) for c in [*columns, "total"]))
    if counts:
        console.print(table)
    else:
        console.print(f"no notifications created in the last {report['window']}")
    console.print(f"queue depth (queued and due now): {report['queue_depth']}")
    _print_workers(console, report["workers"])
    daemon = report["daemon"]
    if daemon is None:
        console.print("daemon: not running (no recent health snapshot in the ledger)")
        return
    console.print(
        f"daemon: {daemon['status']} (pid {daemon.get('pid')}, listening on "
        f"{daemon.get('listen') or '-'}, since {_when(daemon.get('started_at'))})"
    )
    _print_health(console, daemon)


def _paused(until: Any, at: Any) -> str:
    """A rate-limit pause still running when the snapshot was taken, as local time and the
    seconds it had left then; empty when there is none."""
    if not isinstance(until, int | float) or not isinstance(at, int | float) or until <= at:
        return ""
    when = datetime.datetime.fromtimestamp(until).strftime("%H:%M:%S")
    return f"{when} ({until - at:.0f}s left)"


def _in_flight(circuit: dict[str, Any]) -> str:
    """Requests in flight, and the target the rate and latency call for (``3 of 36``)."""
    target = circuit.get("in_flight_target")
    shown = str(circuit.get("in_flight", ""))
    return shown if target is None else f"{shown} of {target}"


def _print_workers(console: Console, workers: list[dict[str, Any]]) -> None:
    if not workers:
        return
    table = Table(title="Workers", box=box.SIMPLE_HEAD)
    for column in ("worker", "host", "pid", "state", "last seen", "holds"):
        table.add_column(column, overflow="fold")
    for w in workers:
        state = "stopped" if w["stopped_at"] is not None else "alive" if w["alive"] else "gone"
        holds = w["holds"]
        held = "; ".join(
            f"{what}: {', '.join(map(str, holds[what]))}"
            for what in ("triggers", "sources", "channels")
            if holds.get(what)
        )
        table.add_row(
            w["id"], w["host"], str(w["pid"]), state, f"{w['seen_ago']:.0f}s ago", held or "-"
        )
    console.print(table)


def _print_health(console: Console, daemon: dict[str, Any]) -> None:
    triggers = Table(title="Triggers", box=box.SIMPLE_HEAD)
    for column in ("trigger", "kind", "state", "restarts", "last error"):
        triggers.add_column(column)
    for t in daemon.get("triggers", []):
        detail = t.get("detail") or {}
        state = t["state"] if detail.get("state") != "error" else f"{t['state']} (failing)"
        error = t.get("last_error") or detail.get("last_error") or ""
        triggers.add_row(t["name"], t["kind"], state, str(t["restarts"]), str(error))
    console.print(triggers)
    circuits = Table(title="Channel circuits", box=box.SIMPLE_HEAD)
    for column in ("channel", "circuit", "in flight", "latency", "paused until", "cause"):
        circuits.add_column(column)
    for name, circuit in daemon.get("circuits", {}).items():
        latency = circuit.get("latency")
        circuits.add_row(
            name,
            str(circuit.get("state", "?")),
            _in_flight(circuit),
            "-" if latency is None else f"{latency * 1000:.0f} ms",
            _paused(circuit.get("paused_until"), daemon.get("updated_at")),
            str(circuit.get("cause") or ""),
        )
    console.print(circuits)
    reload = daemon.get("reload", {})
    if reload and not reload.get("ok", True):
        console.print("[red]last reload rejected:[/red]")
        for problem in reload.get("problems", []):
            console.print(f"  {problem}", markup=False)


def _print_notifications(console: Console, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        console.print(
            f"#{doc['id']} rule {doc['rule']} (version {doc['rule_version']}) via "
            f"{doc['channel']} to {doc['recipient']}: [bold]{doc['state']}[/bold]"
            f" after {doc['attempts']} attempt(s)"
        )
        for key in ("provider_id", "dedupe_key", "parent_id", "reason", "failure_class", "text"):
            if doc.get(key) not in (None, ""):
                console.print(f"  {key.replace('_', ' ')}: {doc[key]}", markup=False)
        for h in doc["history"]:
            detail = json.dumps(h["detail"], default=str, ensure_ascii=False)
            console.print(f"  {_when(h['at'])}  {h['kind']:<8} {detail}", markup=False)


def _print_in_doubt(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("nothing in doubt")
        return
    table = Table(title="In doubt: the provider may have sent these")
    for column in ("id", "rule", "recipient", "attempts", "since", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["rule"],
            row["recipient"],
            str(row["attempts"]),
            _when(row["updated_at"]),
            row["reason"],
        )
    console.print(table)
    console.print("decide each one: nextstep release ID (send it again) or nextstep cancel ID")
