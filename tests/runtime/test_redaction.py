"""Issue 15.2: texts that come from outside (a receiver's error body echoing the request, a
provider's answer) are redacted before they are stored in the ledger or shown by /healthz and
``nextstep status``. Real HTTP on loopback, a real SQLite ledger, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.adapters.channels.webhook import WebhookChannel
from nextstep.engine.clock import FakeClock
from nextstep.engine.commands.cli import main
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import State
from nextstep.engine.runtime.server import health_document
from nextstep.engine.sending.ratelimit import ChannelLimits
from tests.delivery.serving import serve
from tests.sending.helpers import dispatcher, enqueue, row
from tests.support.notifications import new_notification
from tests.support.sandbox import running_sandbox

BEARER = "crm-TOKEN-7f3a9c"
QUERY_SECRET = "qv-SECRET-5521"
HEADER_SECRET = "hdr-SECRET-8812"
PHONE = "34655123456"
LEAKS = (BEARER, QUERY_SECRET, HEADER_SECRET, PHONE)


async def _echo_401(request: Request) -> Response:
    """A CRM that refuses the call and echoes everything it was sent."""
    echoed = {
        "error": "unauthorized",
        "url": str(request.url),
        "headers": dict(request.headers),
        "body": (await request.body()).decode(),
    }
    return Response(orjson.dumps(echoed), status_code=401, media_type="application/json")


def _status(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["status", "--store", url, *args])
    assert result.exit_code == 0, result.output
    return result.output


async def test_an_echoed_request_leaves_no_secret_or_number_behind(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    runner = LedgerRunner(open_store(url))
    app = Starlette(routes=[Route("/crm", _echo_401, methods=["POST"])])
    async with serve(app) as base:
        config = {
            "url": f"{base}/crm?api_key={QUERY_SECRET}",
            "headers": {"Authorization": f"Bearer {BEARER}", "X-Crm-Check": HEADER_SECRET},
        }
        channel = WebhookChannel("crm", config, clock=clock)
        try:
            fields = {"body": {"case": "1001", "phone": PHONE}}
            (nid,) = await enqueue(runner, new_notification(PHONE, channel="crm", fields=fields))
            d = dispatcher(runner, clock, channel, limits=ChannelLimits(max_in_flight=1))
            await d.run_until_idle()
        finally:
            await channel.aclose()
    lane = d.status()["crm"]
    assert lane.circuit.state == "open"
    stored = await row(runner, nid)
    history = await runner.call(runner.store.history, nid)
    runner.close()
    assert stored.state is State.QUEUED
    texts = [stored.reason or "", json.dumps([h.detail for h in history])]
    assert "401" in texts[1]  # the answer is kept, redacted
    health = health_document(
        triggers=[],
        circuits={"crm": lane.circuit.public()},
        reload={},
        now=clock.now(),
        started_at=clock.now(),
    )
    assert health["circuits"]["crm"]["cause"] == "account"
    texts.append(json.dumps(health))
    texts.append(_status(url, str(nid)))
    texts.append(_status(url, str(nid), "--json"))
    for text in texts:
        for leak in LEAKS:
            assert leak not in text, (leak, text)


async def test_status_of_a_1msg_answer_masks_the_number(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    runner = LedgerRunner(open_store(url))
    async with running_sandbox(acks=False) as sandbox:
        channel = OneMsgChannel("whatsapp", sandbox.channel_config(), clock=clock)
        try:
            fields = {
                "template": "next_step",
                "namespace": NAMESPACE,
                "language": "en",
                "params": ["Maria", "loan application", "upload documents"],
                "text": "Hello",
            }
            (nid,) = await enqueue(runner, new_notification(PHONE, fields=fields))
            await dispatcher(runner, clock, channel).run_until_idle()
        finally:
            await channel.aclose()
    assert (await row(runner, nid)).state is State.SENT
    runner.close()
    for out in (_status(url, str(nid)), _status(url, str(nid), "--json")):
        assert "3456@c.us" in out  # the answer is there…
        assert PHONE not in out  # …with the number masked
