"""The real daemon as a subprocess on loopback: hot reload, graceful stop, trigger restarts."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.onemsg_sandbox.config import SandboxConfig
from adapters.onemsg_sandbox.server import Running, serving
from tests.daemon.harness import (
    EVENT_TOKEN,
    WEBHOOK_SECRET,
    DaemonProcess,
    Workspace,
    rule_yaml,
    wait_for,
)

pytestmark = pytest.mark.slow

HTTP_TRIGGER = "http: {path: /events/reload}"


@pytest.fixture
async def sandbox() -> AsyncIterator[Running]:
    async with serving(SandboxConfig(ack_delay=0.01)) as running:
        yield running


@pytest.fixture
def workspace(tmp_path: Path, sandbox: Running) -> Workspace:
    space = Workspace(tmp_path, sandbox.base_url)
    space.write_config()
    return space


def sent_params(sandbox: Running) -> dict[str, list[str]]:
    """What the sandbox received per phone: the body parameters of each sendTemplate."""
    sent: dict[str, list[str]] = {}
    for request in list(sandbox.state.requests):
        if request.path.endswith("sendTemplate") and request.status == 200:
            body: Any = request.body
            params = [p["text"] for p in body["params"][0]["parameters"]]
            sent.setdefault(body["phone"], []).append(" | ".join(params))
    return sent


async def reloaded(daemon: DaemonProcess, since: float) -> bool:
    """True once a reload newer than ``since`` has been reported by /healthz."""
    state = (await daemon.health())["reload"]
    return bool(state["at"] and state["at"] > since)


async def test_hot_reload(workspace: Workspace, sandbox: Running) -> None:
    workspace.write_rule("a.yaml", rule_yaml("greet", HTTP_TRIGGER, "v1"))
    daemon = await DaemonProcess.start(workspace)
    try:
        answer = await daemon.post_event(
            "/events/reload", {"phone": "+34600111142", "key": "k1", "name": "Ana"}
        )
        assert answer.status_code == 202, answer.text

        async def got(phone: str, n: int = 1) -> list[str] | None:
            found = sent_params(sandbox).get(phone, [])
            return found if len(found) >= n else None

        assert await wait_for(lambda: got("34600111142"), "the first send") == ["Ana | v1 k1"]

        # 1. A changed rule: the next event renders with the new params.
        before = (await daemon.health())["reload"]["at"]
        workspace.write_rule("a.yaml", rule_yaml("greet", HTTP_TRIGGER, "v2"))
        await wait_for(lambda: reloaded(daemon, before), "the reload of a changed rule")
        await daemon.post_event(
            "/events/reload", {"phone": "+34600122242", "key": "k2", "name": "Bea"}
        )
        assert await wait_for(lambda: got("34600122242"), "a send after the reload") == [
            "Bea | v2 k2"
        ]
        assert await daemon.metric("nextstep_config_last_reload_successful") == 1.0

        # 2. An invalid edit: the old rules keep working, the error is logged, the metric is 0.
        before = (await daemon.health())["reload"]["at"]
        workspace.write_rule("a.yaml", rule_yaml("greet", HTTP_TRIGGER, "v3") + "    when: (\n")
        await wait_for(lambda: reloaded(daemon, before), "the rejected reload")
        assert await daemon.metric("nextstep_config_last_reload_successful") == 0.0
        log = daemon.log_text()
        assert "reload rejected" in log
        assert "rules/a.yaml:" in log and "rule greet" in log  # the validate format
        await daemon.post_event(
            "/events/reload", {"phone": "+34600133342", "key": "k3", "name": "Cai"}
        )
        assert await wait_for(lambda: got("34600133342"), "a send on the old rules") == [
            "Cai | v2 k3"
        ]

        # 3. A new trigger folder: a new rule file whose CSV trigger watches a new folder.
        before = (await daemon.health())["reload"]["at"]
        workspace.write_rule("a.yaml", rule_yaml("greet", HTTP_TRIGGER, "v2"))
        csv_trigger = 'csv: {path: "inbox/new/*.csv", settle: 50ms}'
        workspace.write_rule("b.yaml", rule_yaml("from-csv", csv_trigger, "csv"))
        await wait_for(lambda: reloaded(daemon, before), "the reload adding a CSV rule")

        async def csv_trigger_running() -> bool:
            triggers = (await daemon.health())["triggers"]
            return any(t["kind"] == "csv" and t["state"] == "running" for t in triggers)

        await wait_for(csv_trigger_running, "the new CSV trigger to run")
        inbox = workspace.root / "inbox" / "new"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "x.part").write_text("phone,key,name\n+34600144442,c1,Dan\n", encoding="utf-8")
        (inbox / "x.part").replace(inbox / "x.csv")
        assert await wait_for(lambda: got("34600144442"), "a send from the new folder") == [
            "Dan | csv c1"
        ]

        # 4. A removed rule: its event path is gone, the other rule still works.
        before = (await daemon.health())["reload"]["at"]
        (workspace.root / "rules" / "a.yaml").unlink()
        await wait_for(lambda: reloaded(daemon, before), "the reload removing a rule")
        answer = await daemon.post_event(
            "/events/reload", {"phone": "+34600155542", "key": "k5", "name": "Eva"}
        )
        assert answer.status_code == 404
        triggers = (await daemon.health())["triggers"]
        assert [t["kind"] for t in triggers] == ["csv"]
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()


async def test_sigterm_during_a_batch_loses_nothing(tmp_path: Path) -> None:
    # The sandbox answers slowly, so SIGTERM arrives with sends in flight and more queued.
    async with serving(SandboxConfig(latency=0.05, ack_delay=0.01)) as sandbox:
        workspace = Workspace(tmp_path, sandbox.base_url)
        workspace.write_config()
        workspace.write_rule("a.yaml", rule_yaml("batch", HTTP_TRIGGER, "b"))
        daemon = await DaemonProcess.start(workspace)
        try:
            events = [{"phone": f"+346{i:06d}42", "key": f"b{i}", "name": "N"} for i in range(300)]
            answer = await daemon.post_event("/events/reload", events)
            assert answer.status_code == 202, answer.text

            async def some_sent() -> bool:
                return len(sent_params(sandbox)) >= 20

            await wait_for(some_sent, "the first sends")
            assert await daemon.stop(signal.SIGTERM) == 0
            assert "stopped" in daemon.log_text()
            first_run = len(sent_params(sandbox))
            assert first_run < 300, "the batch finished before SIGTERM: nothing was tested"

            restarted = await DaemonProcess.start(workspace, "restarted")

            async def all_done() -> bool:
                rows = workspace.query("SELECT state, count(*) FROM notifications GROUP BY 1")
                states = dict(rows)
                return sum(states.values()) == 300 and not ({"queued", "sending"} & set(states))

            await wait_for(all_done, "every notification to be sent", timeout=60)
            assert await restarted.stop() == 0
        finally:
            await daemon.kill()
        sent = sent_params(sandbox)
        assert len(sent) == 300
        assert all(len(params) == 1 for params in sent.values()), "a phone was sent twice"
        states = dict(workspace.query("SELECT state, count(*) FROM notifications GROUP BY 1"))
        assert set(states) <= {"sent", "delivered", "read"}, states


async def test_a_crashing_trigger_restarts_while_the_others_run(
    workspace: Workspace, sandbox: Running
) -> None:
    # The CSV trigger's folder is a plain file: creating the folder fails, the trigger crashes.
    blocked = workspace.root / "inbox" / "blocked"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder", encoding="utf-8")
    workspace.write_rule(
        "csv.yaml", rule_yaml("csv-rule", 'csv: {path: "inbox/blocked/*.csv", settle: 50ms}', "csv")
    )
    workspace.write_rule("http.yaml", rule_yaml("http-rule", HTTP_TRIGGER, "http"))
    daemon = await DaemonProcess.start(workspace, log_format="json")
    try:

        async def csv_health() -> dict[str, Any]:
            (found,) = [t for t in (await daemon.health())["triggers"] if t["kind"] == "csv"]
            return dict(found)

        async def restarted_twice() -> bool:
            return (await csv_health())["restarts"] >= 2

        await wait_for(restarted_twice, "the failing trigger to be restarted twice")
        health = await daemon.health()
        assert health["status"] == "degraded"
        assert "FileExistsError" in (await csv_health())["last_error"]
        # The other trigger keeps working meanwhile.
        answer = await daemon.post_event(
            "/events/reload", {"phone": "+34600166642", "key": "h", "name": "Fe"}
        )
        assert answer.status_code == 202, answer.text

        # Once the cause is gone, the next restart sticks and the trigger does its work.
        blocked.unlink()

        async def running() -> bool:
            return (await csv_health())["state"] == "running" and blocked.is_dir()

        await wait_for(running, "the trigger to run again")
        (blocked / "a.part").write_text("phone,key,name\n+34600177742,c,Gil\n", encoding="utf-8")
        (blocked / "a.part").replace(blocked / "a.csv")

        async def both_sent() -> bool:
            sent = sent_params(sandbox)
            return "34600166642" in sent and "34600177742" in sent

        await wait_for(both_sent, "both triggers' sends")
        assert await daemon.stop() == 0
        lines = [json.loads(line) for line in daemon.log_text().splitlines()]
        assert any(
            line["msg"] == "trigger inbox/blocked/*.csv failed" and "FileExistsError" in line["exc"]
            for line in lines
        )
        text = daemon.log_text()
        assert EVENT_TOKEN not in text and WEBHOOK_SECRET not in text
        assert "34600177742" not in text
    finally:
        await daemon.kill()
