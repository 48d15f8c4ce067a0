"""``nextstep templates [--check]`` against the sandbox, and ``nextstep sandbox`` itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.engine.commands.cli import main
from tests.support.sandbox import SandboxHandle

NEXT_STEP = (
    'Hello, <<1>>! For your process "<<2>>", the next step is: <<3>> '
    "If you need help — we are here."
)


def rule(
    rule_id: str,
    template: str = "next_step",
    language: str = "en",
    namespace: str = NAMESPACE,
    text: str = NEXT_STEP,
) -> str:
    count = text.count("<<")
    params = ", ".join(f'{n}: "p{n}"' for n in range(1, count + 1))
    return (
        f"  - id: {rule_id}\n"
        f"    trigger: {{http: {{path: /events/{rule_id}}}}}\n"
        f'    to: "{{{{ event.phone }}}}"\n'
        f"    send:\n"
        f"      channel: whatsapp\n"
        f"      template: {template}\n"
        f"      namespace: {namespace}\n"
        f'      language: "{language}"\n'
        f"      text: '{text}'\n" + (f"      params: {{{params}}}\n" if params else "")
    )


def workspace(tmp_path: Path, sandbox: SandboxHandle, *rules: str) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n" + "".join(rules), encoding="utf-8")
    config = tmp_path / "nextstep.yaml"
    config.write_text(
        f"store: sqlite:///{tmp_path / 'ledger.db'}\n"
        "rules: rules/\n"
        "default_country: ES\n"
        "channels:\n"
        f'  whatsapp: {{type: 1msg, base_url: "{sandbox.base_url}", instance_id: i1,\n'
        f"             token: {sandbox.token}}}\n",
        encoding="utf-8",
    )
    return config


async def invoke(*args: str) -> Result:
    # The command runs its own event loop; the sandbox serves in this one.
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_lists_approved_templates(tmp_path: Path, sandbox: SandboxHandle) -> None:
    config = workspace(tmp_path, sandbox, rule("r1"))
    result = await invoke("templates", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "next_step_short" in result.output and "spring_promo" not in result.output
    everything = await invoke("templates", "-c", str(config), "--all")
    assert "spring_promo" in everything.output and "[paused]" in everything.output


async def test_check_passes_for_matching_rules(tmp_path: Path, sandbox: SandboxHandle) -> None:
    short = "<<1>>, your next step: <<2>>"
    config = workspace(
        tmp_path,
        sandbox,
        rule("a"),
        rule("b", "next_step_short", text=short),
        rule("c", language="{{ event.lang }}"),
    )
    result = await invoke("templates", "-c", str(config), "--check")
    assert result.exit_code == 0, result.output
    assert "3 sends match, 0 do not" in result.output
    assert "rendered per event" in result.output


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"language": "fr"},
            "no template next_step in fr (approved languages: en, es)",
            id="language",
        ),
        pytest.param({"template": "missing"}, "no template missing in en", id="name"),
        pytest.param({"namespace": "other_ns"}, "namespace other_ns differs", id="namespace"),
        pytest.param(
            {"text": "Hello <<1>>, step <<2>>"},
            "the rule fills 2 body variables, the template has 3",
            id="variables",
        ),
        pytest.param(
            {"template": "spring_promo", "text": "<<1>>, our spring offer is here."},
            "is paused",
            id="not-approved",
        ),
    ],
)
async def test_check_reports_mismatches(
    tmp_path: Path, sandbox: SandboxHandle, changes: dict[str, str], message: str
) -> None:
    config = workspace(tmp_path, sandbox, rule("ok"), rule("bad", **changes))
    result = await invoke("templates", "-c", str(config), "--check")
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "1 send matches, 1 do not" in result.output


async def test_check_json(tmp_path: Path, sandbox: SandboxHandle) -> None:
    config = workspace(tmp_path, sandbox, rule("bad", language="fr"))
    result = await invoke("templates", "-c", str(config), "--check", "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 1 and doc["ok"] is False
    assert doc["checks"][0]["rule_id"] == "bad" and doc["checks"][0]["errors"]
    assert {t["name"] for t in doc["channels"]["whatsapp"]} >= {"next_step", "next_step_short"}


async def test_unknown_channel_is_a_usage_error(tmp_path: Path, sandbox: SandboxHandle) -> None:
    config = workspace(tmp_path, sandbox, rule("r1"))
    result = await invoke("templates", "-c", str(config), "--channel", "sms")
    assert result.exit_code == 2 and "no 1msg channel named sms" in result.output


async def test_unreachable_channel_fails_cleanly(tmp_path: Path, sandbox: SandboxHandle) -> None:
    config = workspace(tmp_path, sandbox, rule("r1"))
    config.write_text(config.read_text().replace(sandbox.base_url, "http://127.0.0.1:1"))
    result = await invoke("templates", "-c", str(config))
    assert result.exit_code == 1 and result.output.startswith("error: ")


def test_sandbox_rejects_bad_options(tmp_path: Path) -> None:
    bad_latency = CliRunner().invoke(main, ["sandbox", "--latency", "fast"])
    scenario = tmp_path / "s.yaml"
    scenario.write_text("recipients: {a: 1}\n")
    bad_scenario = CliRunner().invoke(main, ["sandbox", "--scenario", str(scenario)])
    assert bad_latency.exit_code == 2
    assert bad_scenario.exit_code == 1 and "s.yaml" in bad_scenario.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_sandbox_command_serves(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "nextstep"),
            "sandbox",
            "--port",
            str(port),
            "--token",
            "tok",
            "--latency",
            "10ms",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().decode()  # printed just before it starts serving
        assert f"http://127.0.0.1:{port}" in banner
        deadline = time.monotonic() + 20
        while True:  # the port opens a moment after the banner
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/i1/status?token=tok", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        assert answer.json() == {"status": "connected"}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()
