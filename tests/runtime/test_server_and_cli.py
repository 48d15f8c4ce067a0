"""The HTTP app's own endpoints, the command list, and the demo end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from nextstep.adapters.channels.onemsg.registration import public_base
from nextstep.engine.commands.cli import main
from nextstep.engine.metrics import RELOAD_OK
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.server import create_app, health_document
from tests.runtime.harness import Workspace

COMMANDS = {"run", "status", "release", "cancel", "demo", "validate", "render", "test"}


def _doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "triggers": [{"name": "/events/a", "kind": "http", "state": "running"}],
        "circuits": {"whatsapp": {"state": "closed"}},
        "reload": {"ok": True},
        "now": 2.0,
        "started_at": 1.0,
    }
    return health_document(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        pytest.param({}, "ok", id="ok"),
        pytest.param(
            {"triggers": [{"name": "x", "kind": "csv", "state": "backoff"}]},
            "degraded",
            id="trigger-restarting",
        ),
        pytest.param({"circuits": {"whatsapp": {"state": "open"}}}, "degraded", id="circuit"),
        pytest.param(
            {
                "triggers": [
                    {
                        "name": "db",
                        "kind": "db_poll",
                        "state": "running",
                        "detail": {"state": "error", "last_error": "OperationalError"},
                    }
                ]
            },
            "degraded",
            id="trigger-failing-inside",
        ),
        pytest.param({"stopping": True}, "stopping", id="stopping"),
    ],
)
def test_health_status(overrides: dict[str, Any], status: str) -> None:
    assert _doc(**overrides)["status"] == status


async def test_healthz_and_metrics_endpoints() -> None:
    state = {"stopping": False}
    app = create_app(lambda: _doc(stopping=state["stopping"]))
    RELOAD_OK.set(1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        metrics = await client.get("/metrics")
        assert "nextstep_config_last_reload_successful 1.0" in metrics.text
        state["stopping"] = True
        assert (await client.get("/healthz")).status_code == 503


def test_help_lists_every_command_with_a_summary() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    section = result.output.split("Commands:\n", 1)[1]
    listed = dict(re.findall(r"^  ([a-z-]+)\s+(\S.*)$", section, re.M))
    assert set(listed) >= COMMANDS, result.output
    assert set(listed) == set(main.commands)  # type: ignore[attr-defined]
    assert all(summary.strip() for summary in listed.values())
    for name in ("run", "status", "release", "cancel", "demo"):
        assert not listed[name].endswith("..."), f"{name}: {listed[name]}"


@pytest.mark.slow
def test_demo_runs_to_the_end_on_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "demo-run"
    env = {**os.environ, "COLUMNS": "120"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from nextstep.engine.commands.cli import main; main()",
            "demo",
            "--dir",
            str(folder),
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "queued → sent → delivered → read" in out
    assert "↳ fallback of" in out
    assert re.search(r"CRM tasks received\s*│\s*1", out), out
    # act two: a client replies STOP, the next notification to her is skipped
    assert re.search(r"clients opted out\s*│\s*1", out), out
    assert re.search(r"\*{7}4555\s+queued → skipped\s*\n\s*opted out", out), out
    assert (folder / "nextstep.db").exists() and (folder / ".nextstep-demo").exists()


@pytest.mark.parametrize(
    ("base_url", "public_url", "expected"),
    [
        pytest.param("http://127.0.0.1:8790", None, "http://127.0.0.1:5000", id="sandbox"),
        pytest.param("https://api.1msg.io", None, None, id="unknown"),
        pytest.param(
            "https://api.1msg.io",
            "https://ns.example.com",
            "https://ns.example.com",
            id="public-url",
        ),
    ],
)
def test_where_1msg_posts_acks(
    tmp_path: Path, base_url: str, public_url: str | None, expected: str | None
) -> None:
    space = Workspace(tmp_path, base_url)
    space.write_config()
    if public_url:
        text = space.config.read_text(encoding="utf-8")
        space.config.write_text(text.replace("server:\n", f"server:\n  public_url: {public_url}\n"))
    config = load_config(space.config)
    base_url = str(config.channels["whatsapp"].settings["base_url"])
    assert public_base(config.server.public_url, base_url, "127.0.0.1:5000") == expected
