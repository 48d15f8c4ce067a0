"""The real daemon as a subprocess on loopback: hot reload, graceful stop, trigger restarts."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.server import Running, serving
from tests.runtime.harness import (
    EVENT_TOKEN,
    WEBHOOK_SECRET,
    DaemonProcess,
    Workspace,
    rule_yaml,
    wait_for,
)

pytestmark = pytest.mark.slow

HTTP_TRIGGER = "http: {path: /events/reload}"
CSV_TRIGGER = 'csv: {path: "inbox/other/*.csv"}'


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


@pytest.fixture
async def daemon(workspace: Workspace) -> AsyncIterator[DaemonProcess]:
    """A daemon serving rule ``greet`` (label v1) on POST /events/reload."""
    workspace.write_rule("a.yaml", rule_yaml("greet", HTTP_TRIGGER, "v1"))
    running = await DaemonProcess.start(workspace)
    try:
        yield running
        assert await running.stop() == 0
    finally:
        await running.kill()


async def send_and_wait(daemon: DaemonProcess, sandbox: Running, phone: str, key: str) -> str:
    """Post one event and return the parameters the sandbox received for it."""
    answer = await daemon.post_event(
        "/events/reload", {"phone": f"+{phone}", "key": key, "name": "Ana"}
    )
    assert answer.status_code == 202, answer.text

    async def got() -> list[str] | None:
        return sent_params(sandbox).get(phone)

    (params,) = await wait_for(got, f"the send to {phone}")
    return params


async def save_and_wait(daemon: DaemonProcess, save: Callable[[], object]) -> None:
    """Apply ``save`` (a file edit) and wait until the daemon has processed the reload."""
    before = (await daemon.health())["reload"]["at"]
    save()
    await wait_for(lambda: reloaded(daemon, before), "the reload")


async def test_a_changed_rule_applies_to_the_next_event(
    daemon: DaemonProcess, workspace: Workspace, sandbox: Running
) -> None:
    assert await send_and_wait(daemon, sandbox, "34600111142", "k1") == "Ana | v1 k1"
    await save_and_wait(
        daemon, lambda: workspace.write_rule("a.yaml", rule_yaml("greet", HTTP_TRIGGER, "v2"))
    )
    assert await send_and_wait(daemon, sandbox, "34600122242", "k2") == "Ana | v2 k2"
    assert await daemon.metric("nextstep_config_last_reload_successful") == 1.0
    assert "triggers unchanged" in daemon.log_text()  # the endpoint was not restarted


async def test_an_invalid_edit_keeps_the_old_rules(
    daemon: DaemonProcess, workspace: Workspace, sandbox: Running
) -> None:
    broken = rule_yaml("greet", HTTP_TRIGGER, "v3") + "    when: (\n"
    await save_and_wait(daemon, lambda: workspace.write_rule("a.yaml", broken))
    assert await daemon.metric("nextstep_config_last_reload_successful") == 0.0
    log = daemon.log_text()
    assert "reload rejected" in log
    assert re.search(r"rules/a\.yaml:\d+:\d+: rule greet: when: ", log)  # the validate format
    assert await send_and_wait(daemon, sandbox, "34600133342", "k3") == "Ana | v1 k3"
    assert (await daemon.health())["reload"]["ok"] is False


async def test_a_new_rule_file_starts_a_trigger_on_a_new_folder(
    daemon: DaemonProcess, workspace: Workspace, sandbox: Running
) -> None:
    csv_trigger = 'csv: {path: "inbox/new/*.csv", settle: 50ms}'
    await save_and_wait(
        daemon, lambda: workspace.write_rule("b.yaml", rule_yaml("from-csv", csv_trigger, "csv"))
    )

    async def csv_running() -> bool:
        triggers = (await daemon.health())["triggers"]
        return any(t["kind"] == "csv" and t["state"] == "running" for t in triggers)

    await wait_for(csv_running, "the new CSV trigger to run")
    inbox = workspace.root / "inbox" / "new"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "x.part").write_text("phone,key,name\n+34600144442,c1,Dan\n", encoding="utf-8")
    (inbox / "x.part").replace(inbox / "x.csv")

    async def got() -> list[str] | None:
        return sent_params(sandbox).get("34600144442")

    assert await wait_for(got, "a send from the new folder") == ["Dan | csv c1"]


async def test_a_removed_rule_stops_its_trigger(
    daemon: DaemonProcess, workspace: Workspace, sandbox: Running
) -> None:
    await save_and_wait(
        daemon, lambda: workspace.write_rule("b.yaml", rule_yaml("other", CSV_TRIGGER, "c"))
    )
    await save_and_wait(daemon, (workspace.root / "rules" / "a.yaml").unlink)
    answer = await daemon.post_event(
        "/events/reload", {"phone": "+34600155542", "key": "k5", "name": "Eva"}
    )
    assert answer.status_code == 404
    assert [t["kind"] for t in (await daemon.health())["triggers"]] == ["csv"]


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


def assert_json_log_is_clean(daemon: DaemonProcess) -> None:
    """Every log line is JSON; the crash is there with its traceback; no secret, no phone."""
    text = daemon.log_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert any(
        line["msg"] == "trigger inbox/blocked/*.csv failed" and "FileExistsError" in line["exc"]
        for line in lines
    )
    assert EVENT_TOKEN not in text and WEBHOOK_SECRET not in text
    assert "34600177742" not in text


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
        assert_json_log_is_clean(daemon)
    finally:
        await daemon.kill()
