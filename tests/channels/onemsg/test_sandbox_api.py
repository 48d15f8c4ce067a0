"""The sandbox validates requests like 1MSG: auth, template checks, Meta passthrough errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from tests.support.sandbox import SandboxHandle, running_sandbox

PHONE = "34600111222"


def body(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "phone": PHONE,
        "template": "next_step",
        "namespace": NAMESPACE,
        "language": {"policy": "deterministic", "code": "en"},
        "params": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": t} for t in ("Maria", "loan #1", "upload documents")
                ],
            }
        ],
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def texts(*values: str) -> list[dict[str, Any]]:
    return [{"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}]


async def send(
    http: httpx.AsyncClient, sandbox: SandboxHandle, doc: dict[str, Any], instance: str = "i1"
) -> httpx.Response:
    return await http.post(
        sandbox.url(instance, "sendTemplate"),
        json=doc,
        headers={"Authorization": f"Bearer {sandbox.token}"},
    )


async def test_accepts_a_valid_template(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    response = await send(http, sandbox, body())
    data = response.json()
    assert response.status_code == 200
    assert data["sent"] is True and data["id"].startswith("wamid.")
    assert data["message"] == f"Sent to {PHONE}@c.us"
    assert data["description"] == "Message has been sent to the provider"
    assert sandbox.sends()[0].body["template"] == "next_step"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param("query", 200, id="query"),
        pytest.param("body", 200, id="body"),
        pytest.param("bearer", 200, id="bearer"),
        pytest.param("none", 401, id="missing"),
        pytest.param("wrong-query-beats-header", 401, id="query-first"),
    ],
)
async def test_token_sources(
    sandbox: SandboxHandle, http: httpx.AsyncClient, where: str, expected: int
) -> None:
    url, doc, headers = sandbox.url("i1", "sendTemplate"), body(), {}
    if where == "query":
        url += f"?token={sandbox.token}"
    elif where == "body":
        doc["token"] = sandbox.token
    elif where == "bearer":
        headers["Authorization"] = f"Bearer {sandbox.token}"
    elif where == "wrong-query-beats-header":
        url += "?token=nope"
        headers["Authorization"] = f"Bearer {sandbox.token}"
    response = await http.post(url, json=doc, headers=headers)
    assert response.status_code == expected
    if expected == 401:
        assert "error" in response.json()
    assert all("token" not in (r.body or {}) for r in sandbox.requests)


@pytest.mark.parametrize("missing", ["template", "language", "namespace"])
async def test_missing_template_fields(
    sandbox: SandboxHandle, http: httpx.AsyncClient, missing: str
) -> None:
    doc = body()
    del doc[missing]
    response = await send(http, sandbox, doc)
    assert (response.status_code, response.json()) == (400, {"message": "template is not defined"})


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"template": "no_such_template"}, id="unknown-name"),
        pytest.param(
            {"language": {"policy": "deterministic", "code": "fr"}}, id="unknown-language"
        ),
        pytest.param({"namespace": "other_namespace"}, id="wrong-namespace"),
        pytest.param({"template": "spring_promo", "params": texts("Ana")}, id="paused"),
    ],
)
async def test_unknown_template_sent_false(
    sandbox: SandboxHandle, http: httpx.AsyncClient, changes: dict[str, Any]
) -> None:
    response = await send(http, sandbox, body(**changes))
    assert response.status_code == 200
    assert response.json()["sent"] is False and "not found" in response.json()["message"]


async def test_unknown_template_meta_passthrough(http: httpx.AsyncClient) -> None:
    async with running_sandbox(unknown_template="meta") as sandbox:
        response = await send(http, sandbox, body(template="no_such_template"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 132001


async def test_parameter_count_mismatch(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    response = await send(http, sandbox, body(params=texts("Maria")))
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == 132000
    assert error["error_data"]["details"] == (
        "body: number of localizable_params (1) does not match the expected number of params (3)"
    )


@pytest.mark.parametrize("text", ["two\nlines", "a\ttab", "five     spaces"])
async def test_whitespace_rule(sandbox: SandboxHandle, http: httpx.AsyncClient, text: str) -> None:
    response = await send(http, sandbox, body(params=texts("Maria", text, "x")))
    assert response.json()["error"]["code"] == 132018


async def test_four_spaces_are_fine(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    response = await send(http, sandbox, body(params=texts("Maria", "a    b", "x")))
    assert response.json()["sent"] is True


async def test_hydrated_body_too_long(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    response = await send(http, sandbox, body(params=texts("Maria", "x" * 1000, "y")))
    assert response.json()["error"]["code"] == 132005


async def test_template_without_variables_needs_no_params(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    response = await send(http, sandbox, body(template="case_closed", params=None))
    assert response.json()["sent"] is True


async def test_bad_phone(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    response = await send(http, sandbox, body(phone="12ab"))
    assert response.status_code == 400


async def test_chat_id_instead_of_phone(sandbox: SandboxHandle, http: httpx.AsyncClient) -> None:
    doc = body(phone=None)
    doc["chatId"] = f"{PHONE}@c.us"
    response = await send(http, sandbox, doc)
    assert response.json()["sent"] is True


async def test_templates_listing_and_paging(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {sandbox.token}"}
    full = (await http.get(sandbox.url("i1", "templates"), headers=auth)).json()
    page = (
        await http.get(
            sandbox.url("i1", "templates"), headers=auth, params={"limit": 2, "offset": 1}
        )
    ).json()
    assert full["total"] == len(full["templates"]) == page["total"]
    assert [t["id"] for t in page["templates"]] == [t["id"] for t in full["templates"][1:3]]
    short = next(t for t in full["templates"] if t["name"] == "next_step_short")
    assert isinstance(short["components"], str)  # like the real API, sometimes
    assert {t["status"] for t in full["templates"]} >= {"APPROVED", "approved"}


async def test_templates_from_a_file(tmp_path: Any, http: httpx.AsyncClient) -> None:
    from nextstep.adapters.channels.onemsg.sandbox.templates import load_templates

    path = tmp_path / "templates.yaml"
    path.write_text(
        "templates:\n  - {name: hi, language: en, namespace: ns, status: APPROVED,\n"
        "     components: [{type: BODY, text: 'Hi {{1}}'}]}\n"
    )
    async with running_sandbox(templates=load_templates(path)) as sandbox:
        ok = await send(http, sandbox, body(template="hi", namespace="ns", params=texts("Ana")))
        gone = await send(http, sandbox, body())
    assert ok.json()["sent"] is True and gone.json()["sent"] is False


async def test_status_and_hook_info_need_a_message_id(
    sandbox: SandboxHandle, http: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {sandbox.token}"}
    status = await http.get(sandbox.url("i1", "status"), headers=auth)
    hook = await http.get(sandbox.url("i1", "hookInfo"), headers=auth)
    unknown = await http.get(
        sandbox.url("i1", "hookInfo"), headers=auth, params={"messageId": "wamid.nope"}
    )
    assert status.json() == {"status": "connected"}
    assert hook.status_code == 400
    assert unknown.json() == {"hooks": []}


async def test_rate_limit_answers_429_with_retry_after(http: httpx.AsyncClient) -> None:
    async with running_sandbox(rate_limit=1.0, rate_burst=1.0) as sandbox:
        first = await send(http, sandbox, body())
        second = await send(http, sandbox, body())
        other_instance = await send(http, sandbox, body(), instance="i2")
    assert first.status_code == 200 and other_instance.status_code == 200
    assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1


async def test_latency_does_not_block_the_loop(http: httpx.AsyncClient) -> None:
    async with running_sandbox(latency=0.2) as sandbox:
        started = time.perf_counter()
        answers = await asyncio.gather(*(send(http, sandbox, body()) for _ in range(20)))
        elapsed = time.perf_counter() - started
    assert all(a.json()["sent"] for a in answers)
    assert 0.2 <= elapsed < 2.0  # 20 × 0.2 s would be 4 s if the sleeps were serial


async def test_only_known_instances(http: httpx.AsyncClient) -> None:
    async with running_sandbox(instances=frozenset({"i1"})) as sandbox:
        known = await send(http, sandbox, body())
        unknown = await send(http, sandbox, body(), instance="i9")
    assert known.status_code == 200 and unknown.status_code == 404


async def test_messages_history_and_its_filters(http: httpx.AsyncClient) -> None:
    async with running_sandbox() as sandbox:
        ids = [
            (await send(http, sandbox, body(phone=phone))).json()["id"]
            for phone in (PHONE, "34611000000", PHONE)
        ]
        await send(http, sandbox, body(phone="34611000000"), instance="i2")
        await send(http, sandbox, body(template="nope"))  # refused: not in the history
        auth = {"Authorization": f"Bearer {sandbox.token}"}

        async def history(**query: Any) -> Any:
            answer = await http.get(sandbox.url("i1", "messages"), headers=auth, params=query)
            return answer.status_code, answer.json()

        def listed(found: tuple[int, Any]) -> list[str]:
            assert found[0] == 200
            return [m["id"] for m in found[1]["messages"]]

        everything = await history()
        assert listed(everything) == ids
        first = everything[1]["messages"][0]
        assert first["messageNumber"] == 1 and first["chatId"] == f"{PHONE}@c.us"
        assert first["body"].startswith('Hello, Maria! For your process "loan #1"')
        assert first["metadata"] == {"template": "next_step", "language": "en"}
        assert listed(await history(chatId=f"{PHONE}@c.us")) == [ids[0], ids[2]]
        assert listed(await history(chatId="34611000000")) == [ids[1]]
        assert listed(await history(msgId=ids[1])) == [ids[1]]
        assert listed(await history(lastMessageNumber=1)) == ids[1:]
        assert listed(await history(limit=2)) == ids[:2]
        assert listed(await history(limit=2, last="true")) == ids[1:]
        assert listed(await history(limit=0)) == ids
        now = int(time.time())
        assert listed(await history(min_time=now + 60)) == []
        assert listed(await history(max_time=now + 60, min_time=now - 60)) == ids
        assert (await history(limit="many"))[0] == 400
        assert (await history(limit=-1))[0] == 400
