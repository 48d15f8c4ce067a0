"""``/optouts`` over real HTTP on loopback, on every ledger backend: a CRM pushes its list
(idempotent), reads it, lifts entries; the token is required; a bad entry refuses the body."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from nextstep.engine.ledger.base import Store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.optout.entries import Directory
from nextstep.engine.optout.routes import optout_routes, optout_token
from tests.delivery.serving import serve
from tests.support.notifications import T0, new_notification

TOKEN = "crm-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    runner = LedgerRunner(store)
    routes = optout_routes(runner, lambda: T0, Directory("ES", ("whatsapp", "crm")), TOKEN)
    try:
        async with (
            serve(Starlette(routes=routes)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            yield client
    finally:
        runner.close(close_store=False)


async def test_push_is_idempotent_and_skips_what_is_queued(
    api: httpx.AsyncClient, store: Store
) -> None:
    queued = store.enqueue([new_notification("34600111222")])[0].id
    body = [
        {"phone": "+34 600 111 222", "note": "unsubscribed in the CRM"},
        {"phone": "600 111 333", "channel": "whatsapp"},
    ]
    first = await api.post("/optouts", json=body, headers=AUTH)
    assert first.status_code == 200
    assert first.json() == {"added": 2, "already": 0, "skipped": [queued]}
    again = await api.post("/optouts", json={"optouts": body}, headers=AUTH)
    assert again.json() == {"added": 0, "already": 2, "skipped": []}
    found = store.get(queued)
    assert found is not None and found.state is State.SKIPPED
    listed = (await api.get("/optouts", headers=AUTH)).json()["optouts"]
    assert [(o["phone"], o["channel"], o["how"], o["note"]) for o in listed] == [
        ("34600111222", "*", "api", "unsubscribed in the CRM"),
        ("34600111333", "whatsapp", "api", ""),
    ]
    one = await api.get("/optouts", params={"phone": "600111333"}, headers=AUTH)
    assert [o["channel"] for o in one.json()["optouts"]] == ["whatsapp"]


async def test_lifting_is_idempotent(api: httpx.AsyncClient, store: Store) -> None:
    await api.post("/optouts", json={"phone": "600111222"}, headers=AUTH)
    await api.post("/optouts", json={"phone": "600111222", "channel": "whatsapp"}, headers=AUTH)
    only = await api.delete("/optouts/34600111222", params={"channel": "whatsapp"}, headers=AUTH)
    assert only.json() == {"removed": 1}
    assert [o.channel for o in store.optouts()] == ["*"]
    every = await api.delete("/optouts/+34600111222", headers=AUTH)
    assert every.json() == {"removed": 1}
    again = await api.request("DELETE", "/optouts", json=[{"phone": "600111222"}], headers=AUTH)
    assert (again.status_code, again.json()) == (200, {"removed": 0})
    assert store.optouts() == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "not-bearer"],
)
async def test_the_token_is_required(
    api: httpx.AsyncClient, store: Store, headers: dict[str, str]
) -> None:
    answer = await api.post("/optouts", json={"phone": "600111222"}, headers=headers)
    assert answer.status_code == 401
    assert (await api.get("/optouts", headers=headers)).status_code == 401
    assert store.optouts() == []


async def test_a_bad_entry_refuses_the_whole_body(api: httpx.AsyncClient, store: Store) -> None:
    answer = await api.post(
        "/optouts",
        json=[
            {"phone": "600111222"},
            {"phone": "12"},
            {"phone": "600111333", "channel": "sms"},
            "x",
        ],
        headers=AUTH,
    )
    assert answer.status_code == 400
    assert [d["index"] for d in answer.json()["details"]] == [1, 2, 3]
    assert "unknown channel 'sms'" in answer.json()["details"][1]["error"]
    assert store.optouts() == []
    not_json = await api.post("/optouts", content=b"{", headers=AUTH)
    assert not_json.status_code == 400


@pytest.mark.parametrize(
    ("server", "token"),
    [
        ({"optout_token": "a", "event_token": "b"}, "a"),
        ({"event_token": "b"}, "b"),
        ({}, ""),
    ],
)
def test_which_token(server: dict[str, str], token: str) -> None:
    assert optout_token({"server": server}) == token
