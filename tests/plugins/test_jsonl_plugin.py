"""A plug-in from outside the package (tests/plugins/jsonl) works like a bundled one: installed
into a folder of its own, it adds a channel and a trigger with keys of their own to
``nextstep validate``, ``schema``, ``render`` and the daemon, and the engine never names it.

This process never sees the plug-in (other tests list the installed plug-ins): each command
runs as ``python -m nextstep`` with the plug-in's folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nextstep.engine.plugins import channel_types, trigger_kinds

PLUGIN = Path(__file__).parent / "jsonl"
ROOT = Path(__file__).resolve().parents[2]
RULES = """\
rules:
  - id: inbox-to-file
    trigger: {jsonl_inbox: {path: "inbox/*.jsonl", every: 100ms}}
    when: event.stage == "docs"
    send:
      channel: out
      record: {case: "{{ event.case }}", says: "Hello, {{ event.name | title }}!"}
"""
BROKEN_RULES = """\
rules:
  - id: bad-send
    trigger: {jsonl_inbox: {path: "inbox/*.jsonl"}}
    send: {channel: out, recrod: {a: 1}}
  - id: bad-trigger
    trigger: {jsonl_inbox: {path: "inbox/*.jsonl", evry: 1s}}
    send: {channel: out, record: {a: 1}}
  - id: bad-check
    trigger: {jsonl_inbox: {path: "inbox/*.txt"}}
    send: {channel: out, record: {a: 1}}
"""


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in installed (without its dependencies: nextstep is there) into a folder."""
    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    assert (major, minor) >= (65, 0), f"setuptools {setuptools.__version__} cannot build it"
    root = tmp_path_factory.mktemp("jsonl")
    source = root / "source"  # a copy: building leaves build/ and *.egg-info beside the code
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return target


def nextstep(
    site: Path, cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m nextstep ARGS`` in ``cwd`` with the plug-in installed."""
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "nextstep", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def workspace(folder: Path, rules: str = RULES, channel: str = "") -> Path:
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "files.yaml").write_text(rules, encoding="utf-8")
    out = channel or f'{{type: jsonl, path: "{folder / "out.jsonl"}", fsync: true}}'
    config = folder / "nextstep.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        store: sqlite:///ledger.db
        rules: rules/
        server: {{listen: "127.0.0.1:0"}}
        channels:
          out: {out}
        """),
        encoding="utf-8",
    )
    return config


def test_this_process_does_not_know_the_plug_in() -> None:
    assert "jsonl" not in channel_types() and "jsonl_inbox" not in trigger_kinds()
    engine = [p for p in (ROOT / "engine").rglob("*") if p.is_file() and p.suffix != ".pyc"]
    assert not [p for p in engine if "jsonl" in p.read_text(encoding="utf-8").lower()]


def test_validate_reports_the_plug_in_s_own_mistakes(site: Path, tmp_path: Path) -> None:
    workspace(tmp_path, BROKEN_RULES, '{type: jsonl, path: out.jsonl, fsync: "yes"}')
    result = nextstep(site, tmp_path, "validate")
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        'nextstep.yaml:5:46: channels.out.fsync: expected true or false, got string "yes"',
        "rules/files.yaml:4:26: rule bad-send: send.recrod: unknown key 'recrod'; "
        "did you mean 'record'?",
        "rules/files.yaml:6:52: rule bad-trigger: trigger.jsonl_inbox.evry: unknown key 'evry'; "
        "did you mean 'every'?",
        "rules/files.yaml:9:35: rule bad-check: trigger.jsonl_inbox.path: 'inbox/*.txt' must "
        "name .jsonl files (end the glob in .jsonl)",
    ]
    workspace(ok := tmp_path / "ok")
    assert nextstep(site, ok, "validate").stdout == "ok: 1 rule in 1 file, 1 channel\n"


def test_the_schemas_include_the_plug_in_s_keys(site: Path, tmp_path: Path) -> None:
    rules = json.loads(nextstep(site, tmp_path, "schema", "rules").stdout)
    config = json.loads(nextstep(site, tmp_path, "schema", "config").stdout)
    assert rules["$defs"]["trigger"]["properties"]["jsonl_inbox"] == {
        "$ref": "#/$defs/trigger.jsonl_inbox"
    }
    assert set(rules["$defs"]["trigger.jsonl_inbox"]["properties"]) == {"path", "every"}
    assert "record" in rules["$defs"]["send"]["properties"]
    channel = config["$defs"]["channel.jsonl"]["properties"]
    assert {"type", "path", "fsync", "rate", "max_in_flight"} <= set(channel)
    assert "jsonl" in config["$defs"]["channel"]["properties"]["type"]["anyOf"][0]["enum"]


def test_render_previews_the_line(site: Path, tmp_path: Path) -> None:
    workspace(tmp_path)
    event = '{"case": 7, "name": "maria", "stage": "docs"}'
    result = nextstep(site, tmp_path, "render", "inbox-to-file", "--event", "-", stdin=event)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "channel:   out (jsonl)" in lines
    assert f"request:   append a line to {tmp_path / 'out.jsonl'}" in lines
    body = json.loads("\n".join(lines[lines.index(next(x for x in lines if x == "{")) :]))
    assert body == {"case": "7", "says": "Hello, Maria!"}


@pytest.fixture
def daemon(site: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    workspace(tmp_path)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "crm.jsonl").write_text(
        '{"case": 1, "name": "maria", "stage": "docs"}\n'
        '{"case": 2, "name": "ana", "stage": "approved"}\n'
        "not json\n"
        '{"case": 3, "name": "luis", "stage": "docs"}\n',
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    process = subprocess.Popen(
        [sys.executable, "-m", "nextstep", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _circuit(site: Path, folder: Path) -> dict[str, Any]:
    report = json.loads(nextstep(site, folder, "status", "--json").stdout)
    daemon = report.get("daemon") or {}
    circuit: dict[str, Any] = daemon.get("circuits", {}).get("out", {})
    return circuit


@pytest.mark.slow
def test_the_daemon_sends_through_the_plug_in(
    daemon: subprocess.Popen[str], site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    deadline = time.monotonic() + 30
    while not (out.exists() and len(out.read_text(encoding="utf-8").splitlines()) >= 2):
        assert daemon.poll() is None, "the daemon stopped"
        assert time.monotonic() < deadline, "nothing was written"
        time.sleep(0.05)
    # its status is in the health snapshot the daemon keeps in the ledger
    while _circuit(site, tmp_path).get("detail") != {"lines": 2}:
        assert time.monotonic() < deadline, "the channel's status is not in the health"
        time.sleep(0.2)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == [
        {"case": "1", "says": "Hello, Maria!"},
        {"case": "3", "says": "Hello, Luis!"},
    ]
