"""Acks: posted only with ackNotificationsOn, to every registered URL, in 1MSG's shape; the
scripted recipients; hookInfo; the channel status toggle; scenario files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from nextstep.adapters.channels.onemsg.sandbox.gate import gated
from nextstep.adapters.channels.onemsg.sandbox.scenarios import (
    EXPERIMENT,
    load_scenario,
    scenario_from,
)
from tests.channels.onemsg.test_sandbox_api import body, send
from tests.support.sandbox import Receiver, SandboxHandle, running_receiver, running_sandbox
from tests.support.waiting import until


async def enable_acks(
    http: httpx.AsyncClient,
    sandbox: SandboxHandle,
    *urls: str,
    instance: str = "i1",
    **settings: Any,
) -> httpx.Response:
    return await http.post(
        sandbox.url(instance, "settings"),
        json={"webhookUrl": list(urls), "ackNotificationsOn": True, **settings},
        headers={"Authorization": f"Bearer {sandbox.token}"},
    )


async def message_id(http: httpx.AsyncClient, sandbox: SandboxHandle, phone: str) -> str:
    response = await send(http, sandbox, body(phone=phone))
    assert response.json()["sent"] is True, response.text
    return str(response.json()["id"])


async def hook_info(http: httpx.AsyncClient, sandbox: SandboxHandle, mid: str) -> list[Any]:
    response = await http.get(
        sandbox.url("i1", "hookInfo"),
        params={"messageId": mid},
        headers={"Authorization": f"Bearer {sandbox.token}"},
    )
    return list(response.json()["hooks"])


def statuses(receiver: Receiver, mid: str) -> list[str]:
    return [a["status"] for a in receiver.acks() if a["id"] == mid]


async def test_acks_posted_in_1msg_shape(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    async with running_receiver() as receiver:
        answer = await enable_acks(http, sandbox, receiver.url)
        assert answer.json()["update"]["ackNotificationsOn"] is True
        mid = await message_id(http, sandbox, "34600111222")
        await sandbox.wait_acks(3)
    assert statuses(receiver, mid) == ["sent", "delivered", "read"]
    payload = receiver.bodies[0]
    assert payload["instanceId"] == "i1"
    assert payload["ack"][0] == {
        "id": mid,
        "chatId": "34600111222@c.us",
        "phone": "34600111222",
        "status": "sent",
    }


async def test_no_acks_without_ack_notifications(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    async with running_receiver() as receiver:
        await http.post(
            sandbox.url("i1", "webhook"),
            json={"webhookUrl": receiver.url},
            headers={"Authorization": f"Bearer {sandbox.token}"},
        )
        silent = await message_id(http, sandbox, "34600111222")
        await enable_acks(http, sandbox, receiver.url)
        loud = await message_id(http, sandbox, "34600111333")
        await sandbox.wait_acks(3)
    assert statuses(receiver, silent) == []
    assert statuses(receiver, loud) == ["sent", "delivered", "read"]
    assert [h["status"] for h in await_hooks(sandbox, silent)] == ["sent", "delivered", "read"]


def await_hooks(sandbox: SandboxHandle, mid: str) -> list[dict[str, Any]]:
    import time

    return sandbox.state.hooks_for(mid, time.time())


async def test_acks_go_to_every_webhook(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    async with running_receiver() as first, running_receiver() as second:
        await enable_acks(http, sandbox, first.url, second.url)
        mid = await message_id(http, sandbox, "34600111222")
        await sandbox.wait_acks(6)
    assert statuses(first, mid) == statuses(second, mid) == ["sent", "delivered", "read"]


async def test_webhook_list_is_replaced_and_capped(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {sandbox.token}"}
    url = sandbox.url("i1", "webhook")
    await http.post(
        url, json={"webhookUrl": ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]}, headers=auth
    )
    await http.post(url, json={"webhookUrl": "http://127.0.0.1:1/c"}, headers=auth)
    six = [f"http://127.0.0.1:1/{n}" for n in range(6)]
    too_many = await http.post(url, json={"webhookUrl": six}, headers=auth)
    current = (await http.get(url, headers=auth)).json()
    assert too_many.status_code == 400
    assert current == {"webhookUrl": "http://127.0.0.1:1/c"}
    cleared = await http.post(sandbox.url("i1", "settings"), json={"webhookUrl": ""}, headers=auth)
    assert cleared.json()["webhookUrl"] == ""


A, B = "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"


@pytest.mark.parametrize(
    ("form", "posted", "status", "answered"),
    [
        pytest.param("string", [A, B], 200, f"{A},{B}", id="string-takes-a-list"),
        pytest.param("string", f"{A}, {B}", 200, f"{A},{B}", id="string-comma-separated"),
        pytest.param("string", A, 200, A, id="string-one"),
        pytest.param("list", f"{A},{B}", 200, [A, B], id="list-takes-a-string"),
        pytest.param("list", [A], 200, [A], id="list-one"),
        pytest.param("string-only", A, 200, A, id="string-only-one"),
        pytest.param("string-only", f"{A},{B}", 200, f"{A},{B}", id="string-only-comma"),
        pytest.param("string-only", [A], 400, "", id="string-only-refuses-a-list"),
    ],
)
async def test_webhook_url_forms(
    http: httpx.AsyncClient, form: str, posted: Any, status: int, answered: Any
) -> None:
    async with running_sandbox(webhook_form=form) as sandbox:
        auth = {"Authorization": f"Bearer {sandbox.token}"}
        url = sandbox.url("i1", "webhook")
        answer = await http.post(url, json={"webhookUrl": posted}, headers=auth)
        settings = await http.post(
            sandbox.url("i1", "settings"), json={"webhookUrl": posted}, headers=auth
        )
        current = (await http.get(url, headers=auth)).json()
        listed = await http.get(sandbox.url("i1", "settings"), headers=auth)
    assert (answer.status_code, settings.status_code) == (status, status)
    assert current == {"webhookUrl": answered}
    assert listed.json()["webhookUrl"] == answered
    if status == 200:
        assert answer.json()["webhookUrl"] == answered
        assert settings.json()["update"] == {"webhookUrl": answered}
    else:
        assert answer.json() == {
            "message": "Invalid request parameters: webhookUrl: Input should be a valid string"
        }


async def test_acks_switched_off(http: httpx.AsyncClient) -> None:
    async with running_sandbox(acks=False, ack_delay=0.0) as sandbox, running_receiver() as rx:
        await enable_acks(http, sandbox, rx.url)
        mid = await message_id(http, sandbox, "34600111222")
        assert [h["status"] for h in await hook_info(http, sandbox, mid)] == [
            "sent",
            "delivered",
            "read",
        ]
    assert rx.bodies == [] and sandbox.state.counts["acks_posted"] == 0


async def test_raw_hooks_post_meta_envelopes(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    async with running_receiver() as receiver:
        await enable_acks(http, sandbox, receiver.url, rawHooks=True)
        mid = await message_id(http, sandbox, "34600111222")
        await sandbox.wait_acks(3)
    value = receiver.bodies[0]["entry"][0]["changes"][0]["value"]
    assert value["statuses"][0]["id"] == mid and value["statuses"][0]["status"] == "sent"


async def test_failing_receiver_is_tried_again(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    async with running_receiver(statuses=[500]) as receiver:
        await enable_acks(http, sandbox, receiver.url)
        mid = await message_id(http, sandbox, "34600111222")
        await sandbox.wait_acks(3)
    assert sandbox.state.counts["posts_failed"] == 1
    assert sorted(set(statuses(receiver, mid))) == ["delivered", "read", "sent"]


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        pytest.param("0001", [(400, 131026)], id="0001-undeliverable"),
        pytest.param("0002", [(500, None), (500, None), (200, None)], id="0002-500-twice"),
        pytest.param("0003", [(429, None), (200, None)], id="0003-429"),
        pytest.param("0004", [(400, 131042), (400, 131042)], id="0004-account"),
        pytest.param("0009", [(401, None)], id="0009-401"),
    ],
)
async def test_scripted_answers(
    sandbox: SandboxHandle,
    http: httpx.AsyncClient,
    suffix: str,
    expected: list[tuple[int, int | None]],
) -> None:
    seen = []
    for _ in expected:
        response = await send(http, sandbox, body(phone=f"3460011{suffix}"))
        code = response.json().get("error", {}).get("code") if response.status_code == 400 else None
        seen.append((response.status_code, code))
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "2"
    assert seen == expected


async def test_scripted_acks(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    async with running_receiver() as receiver:
        await enable_acks(http, sandbox, receiver.url)
        experiment = await message_id(http, sandbox, "34600110006")
        silent = await message_id(http, sandbox, "34600110007")
        shuffled = await message_id(http, sandbox, "34600110008")
        await sandbox.wait_acks(2 + 5)
    assert statuses(receiver, experiment) == ["sent", "failed"]
    failed = next(a for a in receiver.acks() if a["status"] == "failed")
    assert failed["error"] == EXPERIMENT
    assert statuses(receiver, silent) == []
    assert statuses(receiver, shuffled) == ["sent", "sent", "read", "delivered", "read"]
    hooks = await hook_info(http, sandbox, silent)
    assert [h["status"] for h in hooks] == ["sent", "delivered", "read"]
    failed_hook = (await hook_info(http, sandbox, experiment))[-1]
    assert failed_hook["errors"][0]["code"] == 130472
    assert isinstance(failed_hook["timestamp"], str)
    assert failed_hook["recipient_id"] == "34600110006"


async def test_slow_answer_is_still_sent(http: httpx.AsyncClient) -> None:
    from nextstep.adapters.channels.onemsg.sandbox.scenarios import default_scenario

    async with running_sandbox(scenario=default_scenario(slow=0.3), ack_delay=0.0) as sandbox:
        response = await send(http, sandbox, body(phone="34600110005"))
    assert response.json()["sent"] is True


async def test_status_disconnected_until_probed_enough(http: httpx.AsyncClient) -> None:
    scenario = scenario_from({"status": "disconnected", "status_recover_after": 2})
    async with running_sandbox(scenario=scenario) as sandbox:
        auth = {"Authorization": f"Bearer {sandbox.token}"}
        seen = [
            (await http.get(sandbox.url("i1", "status"), headers=auth)).json()["status"]
            for _ in range(4)
        ]
    assert seen == ["disconnected", "disconnected", "connected", "connected"]


async def test_status_toggled_by_control_endpoint(http: httpx.AsyncClient) -> None:
    async with running_sandbox(scenario=scenario_from({"status": "disconnected"})) as sandbox:
        auth = {"Authorization": f"Bearer {sandbox.token}"}
        before = (await http.get(sandbox.url("i1", "status"), headers=auth)).json()
        await http.post(
            f"{sandbox.base_url}/_sandbox/i1/status", json={"status": "connected"}, headers=auth
        )
        after = (await http.get(sandbox.url("i1", "status"), headers=auth)).json()
        stats = (await http.get(f"{sandbox.base_url}/_sandbox/i1/stats", headers=auth)).json()
    assert (before["status"], after["status"]) == ("disconnected", "connected")
    assert stats["accepted"] == 0


async def test_scenario_file(tmp_path: Path, http: httpx.AsyncClient) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "recipients:\n"
        "  - match: '0001'\n"
        "    answers: [{status: 503}, {meta: 130429, retry_after: 'http-date:30'}]\n"
        "  - match: '34600999888'\n"
        "    answer: {message: 'Phone is not a WhatsApp user'}\n"
        "  - match: '4242'\n"
        "    acks: [sent, {status: failed, error: 'Message undeliverable', code: 131026}]\n"
    )
    scenario = load_scenario(path)
    async with running_sandbox(scenario=scenario, ack_delay=0.0) as sandbox:
        first = await send(http, sandbox, body(phone="34600110001"))
        second = await send(http, sandbox, body(phone="34600110001"))
        third = await send(http, sandbox, body(phone="34600110001"))
        refused = await send(http, sandbox, body(phone="34600999888"))
        builtin = await send(http, sandbox, body(phone="34600110004"))
        mid = (await send(http, sandbox, body(phone="34600114242"))).json()["id"]
        hooks = await hook_info(http, sandbox, mid)
    assert first.status_code == 503
    assert second.json()["error"]["code"] == 130429 and "GMT" in second.headers["Retry-After"]
    assert third.json()["sent"] is True  # the file's script overrides the built-in 0001
    assert refused.json() == {"sent": False, "message": "Phone is not a WhatsApp user"}
    assert builtin.json()["error"]["code"] == 131042
    assert [h["status"] for h in hooks] == ["sent", "failed"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("recipients: {a: 1}\n", id="not-a-list"),
        pytest.param("recipients: [{answer: {status: 500}}]\n", id="no-match"),
        pytest.param("recipients: [{match: '1', acks: [{error: x}]}]\n", id="ack-without-status"),
        pytest.param("- 1\n", id="not-a-mapping"),
        pytest.param("recipients: [{match: '1', delay: soon}]\n", id="bad-duration"),
        pytest.param("recipients: [{match: '1', answer: {hold: soon}}]\n", id="bad-hold"),
        pytest.param(
            "recipients: [{match: '1', acks: [{status: read, repeat: 11}]}]\n", id="repeat-11"
        ),
        pytest.param(
            "recipients: [{match: '1', acks: [{status: read, late: later}]}]\n", id="bad-late"
        ),
    ],
)
def test_bad_scenario_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.yaml"):
        load_scenario(path)


async def test_faults_for_tests(http: httpx.AsyncClient) -> None:
    # hold: accepted (history, acks) before the answer; late, post: false and repeat change
    # only what is posted, never what hookInfo says happened.
    scenario = scenario_from(
        {
            "recipients": [
                {"match": "7001", "answer": {"hold": "1s"}},
                {
                    "match": "4242",
                    "acks": [
                        {"status": "sent", "late": "0.3s"},
                        {"status": "delivered", "repeat": 3},
                        {"status": "read", "post": False},
                    ],
                },
            ]
        }
    )
    async with (
        running_sandbox(scenario=scenario, ack_delay=0.01) as sandbox,
        running_receiver() as receiver,
    ):
        await enable_acks(http, sandbox, receiver.url)
        sending = asyncio.create_task(send(http, sandbox, body(phone="34600117001")))
        await until(lambda: len(sandbox.state.messages) == 1)
        assert not sending.done()  # taken, the answer still held back
        held = await sending
        [accepted] = sandbox.state.messages.values()
        assert (held.json()["sent"], held.json()["id"]) == (True, accepted.message_id)
        mid = await message_id(http, sandbox, "34600114242")
        await sandbox.wait_acks(3 + 4)  # the held message's 3, then delivered x3 and sent
        hooks = await hook_info(http, sandbox, mid)
    assert statuses(receiver, mid) == ["delivered", "delivered", "delivered", "sent"]
    assert [h["status"] for h in hooks] == ["sent", "delivered", "read"]


async def test_the_gate_refuses_connections_while_closed(http: httpx.AsyncClient) -> None:
    scenario = scenario_from({"recipients": [{"match": "7002", "answer": {"hold": "forever"}}]})
    async with running_sandbox(scenario=scenario) as sandbox, gated(sandbox.base_url) as gate:
        auth = {"Authorization": f"Bearer {sandbox.token}"}
        url = f"{gate.base_url}/i1/status"
        assert (await http.get(url, headers=auth)).json() == {"status": "connected"}
        port = gate.port
        through = f"{gate.base_url}/i1/sendTemplate"
        held = asyncio.create_task(http.post(through, json=body(phone="34600117002"), headers=auth))
        await until(lambda: len(sandbox.state.messages) == 1)
        await gate.close()
        with pytest.raises(httpx.RemoteProtocolError):
            await held  # the open connection was reset: taken, never answered
        async with httpx.AsyncClient() as fresh:
            with pytest.raises(httpx.ConnectError):
                await fresh.get(url, headers=auth)
        await gate.open()
        assert gate.port == port
        async with httpx.AsyncClient() as fresh:
            assert (await fresh.get(url, headers=auth)).json() == {"status": "connected"}
