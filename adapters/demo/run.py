"""``nextstep demo``: the whole pipeline on embedded defaults, with no account and no setup.

In a fresh folder (``./demo-run/``) it writes a config with a SQLite ledger and the example
rules of ``rules/``, starts the built-in 1MSG sandbox and a stand-in CRM webhook receiver on
loopback (in this process), runs the daemon, drops the example CRM export into the watched
folder, and shows each notification live (queued → sent → delivered → read; the failing one
going to its fallbacks). Then one client replies STOP on WhatsApp (the sandbox posts it to the
daemon's webhook): she is opted out and told so, and the next export's notification to her is
skipped (opted out) while the others go. It ends by itself once every notification has
settled, with a summary, or stays up with ``--keep-running``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import sqlite3
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN, SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.server import serving
from nextstep.engine.errors import NextstepError, UsageError
from nextstep.engine.ledger.base import HistoryEntry, Notification
from nextstep.engine.ledger.sqlite import SqliteStore
from nextstep.engine.model import State
from nextstep.engine.plugins.registry import PluginUnavailable, channel_class, trigger_class
from nextstep.engine.redact import mask_phones_in
from nextstep.engine.rules.config import Config, load_config
from nextstep.engine.runtime.daemon import Daemon
from nextstep.engine.runtime.logs import configure_logging
from nextstep.engine.runtime.server import listening_socket, make_server

# The repository's rules/ folder, shipped inside this package (a wheel has no repository).
RULES = Path(str(resources.files("nextstep.adapters.demo") / "rules"))
EXPORT = RULES / "examples" / "loans-export.csv"
MARKER = ".nextstep-demo"
OPEN = frozenset({State.QUEUED, State.SENDING})
ARROW = " → "
STYLE = {
    "queued": "yellow",
    "sending": "yellow",
    "sent": "cyan",
    "delivered": "blue",
    "read": "green",
    "failed": "red",
    "expired": "red",
    "in_doubt": "magenta",
    "skipped": "dim",
    "cancelled": "dim",
    "superseded": "dim",
}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """Where the demo runs, how long it may take, and whether it stays up at the end."""

    folder: Path = Path("demo-run")
    keep_running: bool = False
    timeout: float = 90.0
    quiet_for: float = 1.5  # settled = nothing open and nothing changed for this long


# The client who replies STOP after the first export, and the next export (her next
# application, and another client's).
STOPPING = ("Lucía", "34611444555", " Stop ")
NEXT_EXPORT = (
    "first_name,application_id,stage,product,due_date,phone\n"
    "lucía,92,docs_required,car loan,2026-07-10,+34 611 444 555\n"
    "maria,12346,docs_required,,2026-07-12,+34 600 111 222\n"
)
CONFIRMATION = "You will get no more messages from us here. Write START to get them again."

# The demo's channels (name -> type); its config is written with the ones installed.
CHANNELS = {"whatsapp": "1msg", "crm": "webhook", "mail": "smtp"}


@dataclass(frozen=True, slots=True)
class Plan:
    """What this installation can run: channels by name, rule files, and what is left out."""

    channels: dict[str, str]
    rule_files: list[Path]
    left_out: list[str]


def _unavailable(kind: str, name: str) -> str | None:
    """Why the ``kind`` plug-in ``name`` cannot load (a missing extra), else None."""
    try:
        (trigger_class if kind == "trigger" else channel_class)(name)
    except PluginUnavailable as exc:
        return exc.reason
    return None


def _needs(rule: Any) -> tuple[set[str], set[str]]:
    """(trigger kinds, channel names) one rule definition uses."""
    if not isinstance(rule, dict):
        return set(), set()
    trigger = rule.get("trigger")
    kinds = set(trigger) if isinstance(trigger, dict) else set()
    sends = [rule.get("send")]
    policy = rule.get("policy")
    if isinstance(policy, dict) and isinstance(policy.get("fallback"), list):
        sends += [step.get("send") for step in policy["fallback"] if isinstance(step, dict)]
    channels = {s["channel"] for s in sends if isinstance(s, dict) and "channel" in s}
    return kinds, channels


def plan() -> Plan:
    """Every example rule file whose triggers and channels are installed; a base install
    (no extras) leaves out the ones that need an extra, and says which."""
    channels, left_out = {}, []
    for name, kind in CHANNELS.items():
        reason = _unavailable("channel", kind)
        if reason is None:
            channels[name] = kind
        else:
            left_out.append(f"channel {name} ({kind}): {reason}")
    rule_files = []
    for rule_file in sorted(RULES.glob("*.y*ml")):
        kinds, names = set(), set()
        for rule in (yaml.safe_load(rule_file.read_text(encoding="utf-8")) or {}).get("rules", []):
            rule_kinds, rule_channels = _needs(rule)
            kinds |= rule_kinds
            names |= rule_channels
        why = [f"trigger {k}: {r}" for k in sorted(kinds) if (r := _unavailable("trigger", k))]
        why += [f"channel {n} is left out" for n in sorted(names) if n not in channels]
        if why:
            left_out.append(f"rules/{rule_file.name} ({'; '.join(why)})")
        else:
            rule_files.append(rule_file)
    return Plan(channels, rule_files, left_out)


def prepare(folder: Path, rule_files: list[Path]) -> None:
    """A fresh demo folder: created, or emptied when it is a previous demo's (never another)."""
    if folder.exists():
        if not (folder / MARKER).exists():
            raise UsageError(f"{folder} exists and is not a nextstep demo folder; pass --dir")
        shutil.rmtree(folder)
    if not (RULES.is_dir() and EXPORT.is_file()):
        raise NextstepError(f"the example rules are missing from {RULES}")
    (folder / "rules").mkdir(parents=True)
    (folder / MARKER).write_text("made by nextstep demo; removed by the next one\n")
    for rule_file in rule_files:
        shutil.copy(rule_file, folder / "rules" / rule_file.name)
    # The example db_poll rule reads demo/crm.db: give it an empty cases table to watch.
    (folder / "demo").mkdir()
    with contextlib.closing(sqlite3.connect(folder / "demo" / "crm.db")) as conn:
        conn.execute(
            "CREATE TABLE cases (id INTEGER PRIMARY KEY, case_ref TEXT, client_name "
            "TEXT, phone TEXT, status TEXT, reviewer TEXT, updated_at TEXT)"
        )
        conn.commit()


def write_config(
    folder: Path, sandbox_url: str, crm_url: str, token: str, channels: dict[str, str]
) -> Path:
    """The demo's nextstep.yaml: everything on loopback, the server on a free port, the
    channels of ``channels`` (those installed), and secrets of its own (random, 32 characters:
    a well-known demo token would be a password everyone knows)."""
    settings = {
        "whatsapp": (
            f'{{type: 1msg, base_url: "{sandbox_url}", instance_id: demo, token: {token}, '
            f'keywords: {{confirm: {{stop: "{CONFIRMATION}"}}}}}}'
        ),
        "crm": f'{{type: webhook, url: "{crm_url}"}}',
        "mail": "{type: smtp, host: 127.0.0.1, port: 8025, from: demo@nextstep.localhost}",
    }
    listed = "".join(f"          {name}: {settings[name]}\n" for name in channels)
    path = folder / "nextstep.yaml"
    path.write_text(
        textwrap.dedent("""\
        # Written by `nextstep demo`: the 1MSG sandbox and the CRM receiver run in its process.
        store: sqlite:///nextstep.db
        rules: rules/
        default_country: ES
        server:
          listen: 127.0.0.1:0
          event_token: {event_token}
          webhook_secret: {webhook_secret}
        status: {{poll_after: 5s, poll_every: 5s}}
        channels:
        """).format(event_token=secrets.token_urlsafe(24), webhook_secret=secrets.token_urlsafe(24))
        + listed,
        encoding="utf-8",
    )
    return path


@dataclass
class CrmReceiver:
    """A stand-in CRM: records what the ``crm`` webhook channel posts."""

    received: list[Any] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        """Record one posted CRM task."""
        self.received.append(await request.json())
        return JSONResponse({"ok": True})


@contextlib.asynccontextmanager
async def serving_crm() -> AsyncIterator[tuple[str, CrmReceiver]]:
    """Serve a :class:`CrmReceiver` on a free loopback port for the block."""
    crm = CrmReceiver()
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = make_server(
        Starlette(routes=[Route("/hooks/nextstep", crm.hook, methods=["POST"])]), "127.0.0.1", port
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}/hooks/nextstep", crm
    finally:
        server.should_exit = True
        await task
        sock.close()


def drop_export(folder: Path, text: str | None = None, name: str = EXPORT.name) -> Path:
    """Drop a CRM export (the example one, or ``text``) into the watched folder the way
    exporters should: write, rename."""
    inbox = folder / "inbox" / "loans"
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f"{name}.part"
    if text is None:
        shutil.copy(EXPORT, partial)
    else:
        partial.write_text(text, encoding="utf-8")
    return partial.replace(inbox / name)


async def client_writes(sandbox_url: str, phone: str, text: str) -> None:
    """A client writes to the demo's number: the sandbox posts it to the daemon's webhook."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{sandbox_url}/_sandbox/demo/inbound",
            json={"from": phone, "text": text},
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        )
    if answer.status_code != 200 or 200 not in answer.json().get("answers", []):
        raise NextstepError(f"the sandbox could not post the reply: {answer.text}")


@dataclass(frozen=True, slots=True)
class Row:
    """One notification as the live view shows it."""

    notification: Notification
    path: tuple[str, ...]  # the states it went through, in order
    note: str


def journey(n: Notification, history: list[HistoryEntry]) -> Row:
    """The states ``n`` went through, from its history."""
    path: list[str] = []
    for entry in history:
        state = entry.detail.get("state") or entry.detail.get("status")
        if isinstance(state, str) and state in STYLE and (not path or path[-1] != state):
            path.append(state)
    if not path or path[-1] != n.state.value:
        path.append(n.state.value)
    note = n.reason if n.state in {State.FAILED, State.EXPIRED, State.SKIPPED} else ""
    return Row(n, tuple(path), note)


def snapshot(store: SqliteStore) -> list[Row]:
    """Every notification with its journey, oldest first."""
    found = sorted(store.list(limit=1000), key=lambda n: n.id)
    return [journey(n, store.history(n.id)) for n in found]


def view(rows: list[Row], elapsed: float) -> Table:
    """The live table (fits 80 columns: the reason of a failure goes under its journey)."""
    table = Table(title=f"nextstep demo — {elapsed:4.1f}s", box=box.SIMPLE_HEAD)
    for column in ("#", "rule", "to", "journey"):
        table.add_column(column, overflow="fold")
    for row in rows:
        n = row.notification
        rule = n.rule_id if n.parent_id is None else f"↳ fallback of #{n.parent_id}"
        to = mask_phones_in(n.recipient) if n.channel == "whatsapp" else n.channel
        steps = ARROW.join(f"[{STYLE.get(s, 'white')}]{s}[/]" for s in row.path)
        note = row.note if len(row.note) <= 70 else row.note[:69] + "…"
        table.add_row(str(n.id), rule, to, steps + (f"\n[dim]{escape(note)}[/]" if note else ""))
    return table


def settled(rows: list[Row], running: set[str]) -> bool:
    """Nothing left to send on a running channel, and nothing waiting for a delivery ack."""
    for row in rows:
        n = row.notification
        if n.channel not in running:
            continue
        if n.state in OPEN:
            return False
        if n.state is State.SENT and n.expect in {"delivered", "read"}:
            return False
    return bool(rows)


def refused_rows(folder: Path) -> int:
    """Rows the CSV trigger refused (they are in ``*.errors.csv`` files with the reason)."""
    files = (folder / "inbox").rglob("*.errors.csv")
    return sum(max(0, len(f.read_text(encoding="utf-8").splitlines()) - 1) for f in files)


def summary(
    rows: list[Row], crm: CrmReceiver, took: float, refused: int, opted_out: int = 0
) -> Group:
    """The closing summary."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.notification.state.value] = counts.get(row.notification.state.value, 0) + 1
    fallbacks = sum(1 for row in rows if row.notification.parent_id is not None)
    table = Table(title="Summary", show_header=False)
    table.add_row("notifications", str(len(rows)))
    for state, count in sorted(counts.items()):
        table.add_row(f"  {state}", f"[{STYLE.get(state, 'white')}]{count}[/]")
    table.add_row("fallbacks", str(fallbacks))
    table.add_row("CRM tasks received", str(len(crm.received)))
    table.add_row("clients opted out", str(opted_out))
    table.add_row("CSV rows refused", f"{refused} (see inbox/loans/**/*.errors.csv)")
    table.add_row("time", f"{took:.1f}s")
    return Group(table)


async def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; 0 when every notification settled in time."""
    folder = options.folder.absolute()
    parts = plan()
    prepare(folder, parts.rule_files)
    for line in parts.left_out:
        console.print(f"[yellow]left out[/] {escape(line)}")
    # Relative paths in the example rules (the CRM database) are relative to the demo folder.
    with (
        (folder / "nextstep.log").open("a", encoding="utf-8") as log_stream,
        contextlib.chdir(folder),
    ):
        configure_logging("text", "INFO", stream=log_stream)
        try:
            async with (
                serving(SandboxConfig(ack_delay=0.4)) as sandbox,
                serving_crm() as (crm_url, crm),
            ):
                written = write_config(
                    folder, sandbox.base_url, crm_url, DEFAULT_TOKEN, parts.channels
                )
                config = load_config(written)
                return await _run(config, folder, options, console, crm, sandbox.base_url)
        finally:
            logging.getLogger().handlers.clear()  # the log file closes with this block


async def _run(
    config: Config,
    folder: Path,
    options: DemoOptions,
    console: Console,
    crm: CrmReceiver,
    sandbox_url: str,
) -> int:
    daemon = Daemon(config)
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        task = asyncio.create_task(daemon.run(stop))
        try:
            await _first(daemon.ready.wait(), task)
        except* NextstepError as group:
            for exc in group.exceptions:
                console.print(f"[red]the daemon could not start:[/] {exc}", markup=True)
            raise SystemExit(1) from None
        console.print(
            f"[bold]nextstep demo[/] in {folder} — 1MSG sandbox {sandbox_url}, "
            f"daemon http://{daemon.listen} (log: {folder / 'nextstep.log'})"
        )
        dropped = drop_export(folder)
        console.print(f"dropped {dropped.name} into inbox/loans/")
        code, rows, took = await _watch(folder, options, console, daemon, stop)
        opted_out = 0
        if code == 0 and not stop.is_set() and "whatsapp" in daemon.channels:
            code, rows, more = await _act_two(folder, options, console, daemon, stop, sandbox_url)
            took, opted_out = took + more, 1
        console.print()
        console.print(summary(rows, crm, took, refused_rows(folder), opted_out))
        if options.keep_running and not stop.is_set():
            _print_next_steps(console, folder, daemon.listen)
            await stop.wait()
        stop.set()
        await task
    return code


async def _act_two(
    folder: Path,
    options: DemoOptions,
    console: Console,
    daemon: Daemon,
    stop: asyncio.Event,
    sandbox_url: str,
) -> tuple[int, list[Row], float]:
    """One client replies STOP; the next export's notification to her is skipped."""
    name, phone, text = STOPPING
    await client_writes(sandbox_url, phone, text)
    console.print()
    console.print(
        f"{name} ({mask_phones_in(phone)}) replies “{text.strip()}” on WhatsApp: she is "
        "opted out, and told so"
    )
    second = drop_export(folder, NEXT_EXPORT, "loans-export-2.csv")
    console.print(f"dropped {second.name} into inbox/loans/ (her next application, and Maria's)")
    before = len(await asyncio.to_thread(_count, folder))
    return await _watch(folder, options, console, daemon, stop, min_rows=before + 2)


def _count(folder: Path) -> list[int]:
    store = SqliteStore(str(folder / "nextstep.db"))
    try:
        return [n.id for n in store.list(limit=1000)]
    finally:
        store.close()


async def _watch(
    folder: Path,
    options: DemoOptions,
    console: Console,
    daemon: Daemon,
    stop: asyncio.Event,
    *,
    min_rows: int = 0,
) -> tuple[int, list[Row], float]:
    """Refresh the live view until settled (and quiet, with at least ``min_rows``
    notifications), the deadline, or Ctrl-C."""
    store = SqliteStore(str(folder / "nextstep.db"))
    started = time.monotonic()
    rows: list[Row] = []
    last_change, previous = started, None
    try:
        with Live(view(rows, 0), console=console, refresh_per_second=8) as live:
            while not stop.is_set():
                rows = await asyncio.to_thread(snapshot, store)
                now = time.monotonic()
                live.update(view(rows, now - started))
                current = [(r.notification.id, r.path) for r in rows]
                if current != previous:
                    previous, last_change = current, now
                quiet = now - last_change >= options.quiet_for
                if len(rows) >= min_rows and settled(rows, set(daemon.channels)) and quiet:
                    return 0, rows, now - started
                if now - started > options.timeout:
                    console.print(f"[red]not settled after {options.timeout:.0f}s[/]")
                    return 1, rows, now - started
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.125)
    finally:
        store.close()
    return 0, rows, time.monotonic() - started


def _print_next_steps(console: Console, folder: Path, listen: str) -> None:
    console.print(
        textwrap.dedent(f"""
        Still running (Ctrl-C to stop). Try:
          nextstep status -c {folder}/nextstep.yaml
          curl http://{listen}/healthz ; curl http://{listen}/metrics
          edit {folder}/rules/loans.yaml and save: the change is live within a second
          drop another CSV into {folder}/inbox/loans/
        """)
    )


async def _first(waiting: Any, task: asyncio.Task[None]) -> None:
    """Wait for ``waiting``; if ``task`` ends first, raise its error."""
    waiter = asyncio.ensure_future(waiting)
    done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise NextstepError("the daemon stopped while starting")


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
