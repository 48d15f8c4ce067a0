"""A rule's ``valid_for`` as the message's TTL (``messageSendTtlSeconds``): the rules, the exact
payload, each attempt's TTL, ``validate`` and ``templates --check``, and the sandbox dropping a
message its TTL ran out on."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.adapters.channels.onemsg.acks import ack_from
from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.checks import check_send
from nextstep.adapters.channels.onemsg.payload import send_template_body
from nextstep.adapters.channels.onemsg.sandbox.hooks import TTL_EXPIRED, timeline
from nextstep.adapters.channels.onemsg.sandbox.scenarios import AckStep, scenario_from
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE, template_index
from nextstep.adapters.channels.onemsg.sandbox.validate import Reply, SendRequest, validate_send
from nextstep.adapters.channels.onemsg.send import TemplateSend
from nextstep.adapters.channels.onemsg.templates import TemplateInfo
from nextstep.adapters.channels.onemsg.ttl import (
    RANGES,
    attempt_ttl,
    category_problem,
    offline_problem,
    rule_ttl,
)
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError
from nextstep.engine.ledger.base import NewNotification
from nextstep.engine.model import Event, Message, OutcomeKind
from nextstep.engine.rules.render import evaluate
from nextstep.engine.rules.rule import Rule
from tests.rules.helpers import load
from tests.support.sandbox import SandboxHandle, running_receiver, running_sandbox

NOW = 1_781_690_400.0  # 2026-06-17T10:00:00Z
SHORT = "<<1>>, your next step: <<2>>"
EVENT = Event({"name": "Ana", "phone": "+34600111222"})


def rules_with(valid_for: str | None, *, channel: str = "whatsapp", rule_id: str = "r") -> str:
    policy = f"    policy: {{valid_for: {valid_for}}}\n" if valid_for else ""
    send = (
        "    send: {channel: whatsapp, template: next_step_short, language: en,\n"
        f"           namespace: {NAMESPACE}, text: '{SHORT}',\n"
        '           params: {1: "{{ event.name }}", 2: "go"}}\n'
        if channel == "whatsapp"
        else '    send: {channel: crm, body: {a: "{{ event.name }}"}}\n'
    )
    return (
        f"  - id: {rule_id}\n    trigger: {{http: {{path: /events/e}}}}\n"
        f'    to: "{{{{ event.phone }}}}"\n' + send + policy
    )


def one(tmp_path: Path, valid_for: str | None) -> Rule:
    return load(tmp_path, rules_with(valid_for)).rules["r"]


def rendered(rule: Rule, now: float = NOW) -> NewNotification:
    found = evaluate(rule, EVENT, now=now, default_country="ES")
    assert isinstance(found, NewNotification)
    return found


# -- the rules (pure) ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("valid_for", "ttl"),
    [(None, None), (30.0, 30), (90.9, 90), (43_200.0, 43_200), (2_591_999.5, 2_591_999)]
    + [(2_592_000.0, None), (90 * 86_400.0, None)],
)
def test_rule_ttl(valid_for: float | None, ttl: int | None) -> None:
    assert rule_ttl(valid_for) == ttl


def test_offline_problem() -> None:
    assert offline_problem(None) is None and offline_problem(30.0) is None
    assert offline_problem(29.5) == (
        "policy.valid_for is 29.5s: WhatsApp's shortest message TTL (messageSendTtlSeconds) is "
        "30s, so the provider could deliver it late; use at least 30s"
    )


@pytest.mark.parametrize(
    ("ttl", "category", "problem"),
    [
        (900, "AUTHENTICATION", None),
        (901, "authentication", "is longer than an authentication template's message TTL allows "),
        (43_200, "UTILITY", None),
        (
            86_400,
            "UTILITY",
            "(1d) is longer than a utility template's message TTL allows (30s–12h)",
        ),
        (3_600, "MARKETING", "(1h) is shorter than a marketing template's message TTL allows"),
        (43_200, "MARKETING", None),
        (5, "SERVICE", None),
        (5, "", None),
    ],
)
def test_category_problem(ttl: int, category: str, problem: str | None) -> None:
    found = category_problem(ttl, category)
    assert found is None if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("ttl", "left", "category", "sent"),
    [
        pytest.param(43_200, 43_199.9, "UTILITY", 43_200, id="first-attempt"),
        pytest.param(43_200, 7_200.2, "UTILITY", 7_201, id="retry-rounded-up"),
        pytest.param(43_200, 12.0, "UTILITY", 30, id="near-the-end-minimum"),
        pytest.param(43_200, -5.0, "UTILITY", 30, id="past-the-end"),
        pytest.param(172_800, 172_800.0, "UTILITY", 43_200, id="too-long-for-utility"),
        pytest.param(600, 600.0, "AUTHENTICATION", 600, id="authentication"),
        pytest.param(3_600, 3_600.0, "MARKETING", 43_200, id="too-short-for-marketing"),
        pytest.param(86_400, 50_000.0, "marketing", 50_000, id="marketing-retry"),
        pytest.param(600, 600.0, "SERVICE", None, id="unknown-category"),
        pytest.param(600, 600.0, None, None, id="no-category"),
        pytest.param(600, None, "UTILITY", 600, id="no-valid-until"),
    ],
)
def test_attempt_ttl(ttl: int, left: float | None, category: str | None, sent: int | None) -> None:
    assert attempt_ttl(ttl, left, category) == sent


@given(
    ttl=st.integers(30, 2_591_999),
    left=st.floats(-1e6, 3e6, allow_nan=False),
    more=st.floats(0, 1e6, allow_nan=False),
    category=st.sampled_from(sorted(RANGES)),
)
def test_attempt_ttl_stays_in_range_and_shrinks_with_time(
    ttl: int, left: float, more: float, category: str
) -> None:
    low, high = RANGES[category]
    sent = attempt_ttl(ttl, left, category)
    assert sent is not None and low <= sent <= high
    assert sent <= max(low, min(ttl, math.ceil(left)))  # never past valid_until unless forced
    later = attempt_ttl(ttl, left - more, category)
    assert later is not None and later <= sent


# -- validate, render, the exact payload ----------------------------------------------------------
def test_validate_refuses_a_valid_for_under_30s(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"send: policy.valid_for is 10s: .*use at least 30s"):
        load(tmp_path, rules_with("10s"))


def test_a_short_valid_for_is_fine_without_a_whatsapp_send(tmp_path: Path) -> None:
    assert load(tmp_path, rules_with("10s", channel="crm")).rules["r"].policy.valid_for == 10.0


def test_valid_for_travels_in_the_fields_and_the_exact_payload(tmp_path: Path) -> None:
    found = rendered(one(tmp_path, "12h"))
    assert (found.fields["ttl"], found.fields["valid_until"]) == (43_200, NOW + 43_200)
    assert found.valid_until == NOW + 43_200
    body = send_template_body(Message("whatsapp", found.recipient, found.fields))
    assert body["messageSendTtlSeconds"] == 43_200
    assert list(body)[-1] == "messageSendTtlSeconds"


@pytest.mark.parametrize("valid_for", [None, "30d", "60d"])
def test_no_ttl_without_valid_for_or_from_30_days(tmp_path: Path, valid_for: str | None) -> None:
    found = rendered(one(tmp_path, valid_for))
    assert "ttl" not in found.fields and "valid_until" not in found.fields
    assert "messageSendTtlSeconds" not in send_template_body(
        Message("whatsapp", found.recipient, found.fields)
    )


def test_render_shows_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nextstep.engine.commands.cli import main

    load(tmp_path, rules_with("2h"))
    (tmp_path / "event.json").write_text('{"name": "Ana", "phone": "+34600111222"}')
    result = CliRunner().invoke(
        main,
        ["render", "r", "--event", str(tmp_path / "event.json"), "--json"]
        + ["-c", str(tmp_path / "nextstep.yaml"), "--now", "2026-06-17T10:00:00Z"],
    )
    assert result.exit_code == 0, result.output
    assert '"messageSendTtlSeconds": 7200' in result.output
    assert '"valid_until": "2026-06-17T12:00:00+00:00"' in result.output


# -- templates --check ----------------------------------------------------------------------------
def template(category: str, language: str = "en") -> TemplateInfo:
    body = "{{1}}, your next step: {{2}}"
    return TemplateInfo("next_step_short", language, NAMESPACE, "approved", category, body, 2)


@pytest.mark.parametrize(
    ("valid_for", "category", "errors", "note"),
    [
        ("12h", "UTILITY", 0, None),
        ("2d", "UTILITY", 1, None),
        ("10m", "AUTHENTICATION", 0, None),
        ("1h", "AUTHENTICATION", 1, None),
        ("1d", "MARKETING", 0, "applies only when 1MSG sends it by MM Lite"),
        ("1h", "MARKETING", 1, None),
        ("1h", "", 0, "has no known TTL range: no TTL is sent"),
        ("60d", "UTILITY", 0, None),
    ],
)
def test_templates_check(
    tmp_path: Path, valid_for: str, category: str, errors: int, note: str | None
) -> None:
    send = one(tmp_path, valid_for).send.compiled
    assert isinstance(send, TemplateSend)
    check = check_send(send, [template(category)])
    assert check is not None and len(check.errors) == errors, check.errors
    assert note is None or any(note in n for n in check.notes)


# -- the channel: each attempt's TTL --------------------------------------------------------------
@pytest.fixture
async def sandbox_with_categories() -> AsyncIterator[SandboxHandle]:
    records = (
        {"name": "util", "language": "en", "namespace": NAMESPACE, "status": "APPROVED",
         "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}"}]},
        {"name": "promo", "language": "en", "namespace": NAMESPACE, "status": "APPROVED",
         "category": "MARKETING", "components": [{"type": "BODY", "text": "Hi {{1}}"}]},
        {"name": "odd", "language": "en", "namespace": NAMESPACE, "status": "APPROVED",
         "components": [{"type": "BODY", "text": "Hi {{1}}"}]},
    )  # fmt: skip
    async with running_sandbox(templates=records, ack_delay=0.0) as sandbox:
        yield sandbox


def timed(template: str, ttl: int, valid_until: float) -> Message:
    fields = {"template": template, "namespace": NAMESPACE, "language": "en", "params": ["Ana"]}
    return Message("w", "34600111222", {**fields, "ttl": ttl, "valid_until": valid_until})


def sent_ttls(sandbox: SandboxHandle) -> list[Any]:
    return [r.body.get("messageSendTtlSeconds") for r in sandbox.sends()]


async def test_each_attempt_sends_the_time_left(
    sandbox_with_categories: SandboxHandle, clock: FakeClock
) -> None:
    sandbox = sandbox_with_categories
    channel = OneMsgChannel("w", sandbox.channel_config("i1"), clock=clock)
    until = clock.now() + 43_200
    try:
        for advance in (0.0, 7_200.0, 36_000.0 - 0.5, 20.0):
            clock.advance(advance)
            assert (await channel.send(timed("util", 43_200, until))).ok
        assert (await channel.send(timed("promo", 86_400, clock.now() + 3_600))).ok
        assert (await channel.send(timed("odd", 600, clock.now() + 600))).ok
    finally:
        await channel.aclose()
    assert sent_ttls(sandbox) == [43_200, 36_000, 30, 30, 43_200, None]
    listings = [r for r in sandbox.requests if r.path.endswith("/templates")]
    assert len(listings) == 3  # again only once the list is 10 minutes old


async def test_an_unknown_template_is_sent_without_ttl(
    sandbox_with_categories: SandboxHandle, clock: FakeClock
) -> None:
    channel = OneMsgChannel("w", sandbox_with_categories.channel_config("i1"), clock=clock)
    try:
        outcome = await channel.send(timed("missing", 600, clock.now() + 600))
        clock.advance(30)
        await channel.send(timed("missing", 600, clock.now() + 600))
        clock.advance(60)
        await channel.send(timed("missing", 600, clock.now() + 600))
    finally:
        await channel.aclose()
    assert not outcome.ok  # the sandbox does not know it either
    assert sent_ttls(sandbox_with_categories) == [None, None, None]
    listings = [r for r in sandbox_with_categories.requests if r.path.endswith("/templates")]
    assert len(listings) == 2  # asked again only after a minute


async def test_categories_unavailable_means_no_ttl(clock: FakeClock) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/templates"):
            return httpx.Response(503, json={"error": "busy"})
        assert "messageSendTtlSeconds" not in request.content.decode()
        return httpx.Response(200, json={"sent": True, "id": "wamid.1"})

    config = {"base_url": "http://1msg.test", "instance_id": "i", "token": "t"}
    channel = OneMsgChannel("w", config, clock=clock, transport=httpx.MockTransport(answer))
    try:
        assert (await channel.send(timed("util", 600, clock.now() + 600))).ok
    finally:
        await channel.aclose()


# -- the sandbox honours it -----------------------------------------------------------------------
def test_timeline() -> None:
    sent, delivered, read = AckStep("sent"), AckStep("delivered"), AckStep("read")
    steps = (sent, delivered, read)
    assert timeline(steps, 100.0, 1.0) == ((101.0, sent), (102.0, delivered), (103.0, read))
    assert timeline(steps, 100.0, 1.0, ttl=10.0) == timeline(steps, 100.0, 1.0)
    assert timeline(steps, 100.0, 1.0, offline=50.0) == (
        (101.0, sent),
        (152.0, delivered),
        (153.0, read),
    )
    assert timeline(steps, 100.0, 1.0, offline=50.0, ttl=30.0) == (
        (101.0, sent),
        (130.0, TTL_EXPIRED),
    )
    assert timeline(steps, 100.0, 1.0, offline=math.inf) == ((101.0, sent),)
    assert timeline(steps, 100.0, 1.0, offline=math.inf, ttl=30.0)[-1] == (130.0, TTL_EXPIRED)
    assert timeline(steps, 100.0, 1.0, ttl=1.5) == ((101.0, sent), (101.5, TTL_EXPIRED))


def test_scenario_offline() -> None:
    scenario = scenario_from(
        {"recipients": [{"match": "66", "offline": "2m"}, {"match": "77", "offline": True}]}
    )
    assert (scenario.scripts[0].offline, scenario.scripts[1].offline) == (120.0, math.inf)
    assert scenario.script_for("34600110010") is not None  # the built-in 0010
    assert scenario.script_for("34600110010").offline == math.inf  # type: ignore[union-attr]


def ttl_body(phone: str, ttl: Any, template: str = "next_step_short") -> dict[str, Any]:
    return {
        "phone": phone,
        "template": template,
        "namespace": NAMESPACE,
        "language": {"policy": "deterministic", "code": "en"},
        "params": [{"type": "body", "parameters": [{"type": "text", "text": t} for t in "ab"]}],
        "messageSendTtlSeconds": ttl,
    }


@pytest.mark.parametrize(
    ("ttl", "template", "status", "code"),
    [
        pytest.param(43_200, "next_step_short", 200, None, id="utility-max"),
        pytest.param(-1, "next_step_short", 200, None, id="utility-thirty-days"),
        pytest.param(43_201, "next_step_short", 400, 100, id="utility-too-long"),
        pytest.param(29, "next_step_short", 400, 100, id="too-short"),
        pytest.param("60", "next_step_short", 400, None, id="text"),
        pytest.param(60.0, "next_step_short", 400, None, id="float"),
        pytest.param(True, "next_step_short", 400, None, id="bool"),
    ],
)
async def test_the_sandbox_checks_the_ttl(
    sandbox: SandboxHandle, http: httpx.AsyncClient, ttl: Any, template: str, status: int,
    code: int | None,
) -> None:  # fmt: skip
    answer = await http.post(
        sandbox.url("i1", "sendTemplate"),
        params={"token": sandbox.token},
        json=ttl_body("34600111222", ttl, template),
    )
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["error"]["code"] == code


async def test_an_out_of_range_ttl_is_a_template_failure(
    sandbox: SandboxHandle, clock: FakeClock
) -> None:
    channel = OneMsgChannel("w", sandbox.channel_config("i1"), clock=clock)
    message = Message(
        "w",
        "34600111222",
        {"template": "next_step_short", "namespace": NAMESPACE, "language": "en",
         "params": ["a", "b"]},
    )  # fmt: skip
    try:
        outcome = await channel._post_template(  # the request as it would go, TTL forced
            {**send_template_body(message), "messageSendTtlSeconds": 10}
        )
    finally:
        await channel.aclose()
    assert (outcome.kind, outcome.code) == (OutcomeKind.TEMPLATE, 100)


@pytest.mark.parametrize(
    ("category", "ttl", "accepted"),
    [
        ("MARKETING", 43_200, 43_200),
        ("MARKETING", 2_592_000, 2_592_000),
        ("MARKETING", -1, None),
        ("MARKETING", 43_199, None),
        ("AUTHENTICATION", -1, 2_592_000),
        ("AUTHENTICATION", 901, None),
        ("", 2_592_000, 2_592_000),
        ("", -1, None),
    ],
)
def test_sandbox_ranges_per_category(category: str, ttl: int, accepted: int | None) -> None:
    record = {
        **{"name": "t", "language": "en", "namespace": "ns", "status": "APPROVED"},
        "category": category,
        "components": [{"type": "BODY", "text": "Hi {{1}}"}],
    }
    body = {**ttl_body("34600111222", ttl, "t"), "namespace": "ns"}
    body["params"] = [{"type": "body", "parameters": [{"type": "text", "text": "a"}]}]
    checked = validate_send(body, template_index([record]))
    if accepted is None:
        assert isinstance(checked, Reply) and checked.body["error"]["code"] == 100
    else:
        assert isinstance(checked, SendRequest) and checked.ttl == accepted


async def test_an_undelivered_message_fails_when_its_ttl_runs_out(clock: FakeClock) -> None:
    async with (
        running_sandbox(ack_delay=0.01, ttl_scale=0.005) as sandbox,
        running_receiver() as receiver,
    ):
        state = sandbox.state.instance("i1")
        state.webhooks, state.settings["ackNotificationsOn"] = [receiver.url], True
        channel = OneMsgChannel("w", sandbox.channel_config("i1"), clock=clock)
        fields = {
            "template": "next_step_short",
            "namespace": NAMESPACE,
            "language": "en",
            "params": ["Ana", "go"],
            "ttl": 60,
            "valid_until": clock.now() + 60,
        }
        try:
            offline = await channel.send(Message("w", "34600110010", fields))
            untimed = {k: v for k, v in fields.items() if k not in ("ttl", "valid_until")}
            forever = await channel.send(Message("w", "34611110010", untimed))
            online = await channel.send(Message("w", "34600111222", fields))
        finally:
            await channel.aclose()
        await sandbox.wait_acks(6)  # sent, failed; sent; sent, delivered, read
        hooks = sandbox.state.hooks_for(offline.provider_id or "", 1e12)
        never = sandbox.state.hooks_for(forever.provider_id or "", 1e12)
    acks = {(a["id"], a["status"]): a for a in receiver.acks()}
    failed = acks[(offline.provider_id, "failed")]
    assert failed["error"] == TTL_EXPIRED.error
    ack = ack_from(failed)
    assert ack is not None and ack.failure is OutcomeKind.RECIPIENT
    assert [h["status"] for h in hooks] == ["sent", "failed"]
    assert hooks[1]["errors"][0]["code"] == 131026
    expired_at = int(hooks[1]["timestamp"]) - int(hooks[0]["timestamp"])
    assert expired_at <= 1  # 60 s × 0.005
    assert [h["status"] for h in never] == ["sent"]  # no TTL: Meta would keep trying
    assert (online.provider_id, "read") in acks
    assert sandbox.sends()[0].body["messageSendTtlSeconds"] == 60
