"""evaluate / render_send: the seed example, keys, windows, skips and render errors."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from nextstep.adapters.channels.onemsg.payload import send_template_body
from nextstep.engine.errors import RenderError
from nextstep.engine.ledger.base import NewNotification
from nextstep.engine.model import Event, Message
from nextstep.engine.rules.render import Skipped, evaluate, render_send
from tests.rules.helpers import WHATSAPP_SEND, one_rule

NOW = datetime.datetime(2026, 6, 17, 10, 0, tzinfo=datetime.UTC).timestamp()  # a Wednesday
SEED_TEXT = (
    'Hello, Maria! For your process "loan application", the next step is: upload documents in '
    "your account by June 20 If you need help — we are here."
)
SEED_EVENT = {
    "first_name": "maria",
    "application_id": 12345,
    "stage": "docs_required",
    "due_date": "2026-06-20",
    "phone": "+34 600 111 222",
}
LOAN_RULE = (
    """\
    trigger: {csv: {path: "inbox/*.csv"}}
    when: event.stage == "docs_required"
    to: "{{ event.phone }}"
    dedupe: "{{ event.application_id }}:{{ event.stage }}"
"""
    + WHATSAPP_SEND
)


def notification(result: NewNotification | Skipped) -> NewNotification:
    assert isinstance(result, NewNotification), result
    return result


def test_seed_example_renders_exactly(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE)
    found = notification(evaluate(rule, Event(SEED_EVENT), now=NOW, default_country="ES"))
    assert found.fields["params"] == [
        "Maria",
        "loan application",
        "upload documents in your account by June 20",
    ]
    assert found.fields["text"] == SEED_TEXT
    body = send_template_body(Message(found.channel, found.recipient, found.fields))
    assert body == {
        "phone": "34600111222",
        "template": "next_step",
        "namespace": "ns",
        "language": {"policy": "deterministic", "code": "en"},
        "params": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Maria"},
                    {"type": "text", "text": "loan application"},
                    {"type": "text", "text": "upload documents in your account by June 20"},
                ],
            }
        ],
    }


def test_payload_without_variables_has_no_params() -> None:
    message = Message(
        "w", "34600111222", {"template": "t", "namespace": "n", "language": "es", "params": []}
    )
    assert "params" not in send_template_body(message)


def test_notification_fields(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE + "    supersedes: 'loan:{{ event.application_id }}'\n")
    event = Event(SEED_EVENT, {"kind": "csv", "file": "a.csv", "row": 2})
    found = notification(evaluate(rule, event, now=NOW, default_country="ES"))
    assert (found.rule_id, found.rule_version) == ("r", rule.version)
    assert (found.channel, found.recipient) == ("whatsapp", "34600111222")
    assert (found.dedupe_key, found.supersede_key) == ("12345:docs_required", "loan:12345")
    assert found.event == SEED_EVENT and found.trigger == event.trigger
    assert found.created_at == NOW
    assert (found.expect, found.within, found.not_before, found.valid_until) == (
        "sent",
        None,
        None,
        None,
    )
    assert set(found.fields) == {"template", "namespace", "language", "params", "text"}


def test_skip_says_which_condition(tmp_path: Path) -> None:
    rule = one_rule(
        tmp_path,
        LOAN_RULE.replace(
            'when: event.stage == "docs_required"',
            'when: [event.stage == "docs_required", "event.amount > 1000"]',
        ),
    )
    skipped = evaluate(rule, Event({**SEED_EVENT, "amount": 5}), now=NOW, default_country="ES")
    assert skipped == Skipped("r", "when[1] is false: event.amount > 1000")
    other = evaluate(rule, Event({**SEED_EVENT, "stage": "x"}), now=NOW, default_country="ES")
    assert isinstance(other, Skipped) and other.reason.startswith("when[0] is false")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        pytest.param({"phone": "12"}, "to", "not a possible phone number", id="bad-phone"),
        pytest.param({"phone": ""}, "to", "empty", id="empty-phone"),
        pytest.param({"due_date": "soon"}, "send.params.3", "'soon' is not a date", id="bad-date"),
        pytest.param({"first_name": " \n "}, "send.params.1", "is empty", id="empty-param"),
        pytest.param({"stage": None}, None, None, id="none-is-not-an-error-just-a-skip"),
    ],
)
def test_render_errors_name_rule_and_field(
    tmp_path: Path, change: dict[str, object], field: str | None, reason: str | None
) -> None:
    rule = one_rule(tmp_path, LOAN_RULE)
    event = Event({**SEED_EVENT, **change})
    if field is None:
        assert isinstance(evaluate(rule, event, now=NOW, default_country="ES"), Skipped)
        return
    with pytest.raises(RenderError) as caught:
        evaluate(rule, event, now=NOW, default_country="ES")
    assert (caught.value.rule_id, caught.value.field) == ("r", field)
    assert reason in caught.value.reason


def test_missing_field_is_named(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE)
    event = {k: v for k, v in SEED_EVENT.items() if k != "due_date"}
    with pytest.raises(RenderError, match=r"send.params.3: 'event.due_date' is undefined"):
        evaluate(rule, Event(event), now=NOW, default_country="ES")


def test_whitespace_reject(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE + "    whitespace: reject\n")
    with pytest.raises(RenderError, match='send.params.1: "Ana\\\\nMaria" contains a newline'):
        evaluate(
            rule, Event({**SEED_EVENT, "first_name": "ana\nmaria"}), now=NOW, default_country="ES"
        )
    normalised = one_rule(tmp_path, LOAN_RULE)
    found = evaluate(
        normalised, Event({**SEED_EVENT, "first_name": "ana\nmaria"}), now=NOW, default_country="ES"
    )
    assert notification(found).fields["params"][0] == "Ana Maria"


def test_filled_body_over_1024_is_refused(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE)
    with pytest.raises(RenderError, match="send.text: the filled text is"):
        evaluate(rule, Event({**SEED_EVENT, "product": "x" * 1000}), now=NOW, default_country="ES")


def test_policy_times(tmp_path: Path) -> None:
    policy = """\
    policy:
      expect: delivered
      within: 15m
      valid_for: 1d
      send_window: {days: [mon-fri], hours: "09:00-20:00", timezone: "{{ event.tz }}"}
"""
    rule = one_rule(tmp_path, LOAN_RULE + policy)
    madrid = notification(
        evaluate(rule, Event({**SEED_EVENT, "tz": "Europe/Madrid"}), now=NOW, default_country="ES")
    )
    assert (madrid.expect, madrid.within, madrid.valid_until) == ("delivered", 900.0, NOW + 86400)
    assert madrid.not_before is None  # 12:00 in Madrid on a Wednesday
    tokyo = notification(
        evaluate(rule, Event({**SEED_EVENT, "tz": "Asia/Tokyo"}), now=NOW, default_country="ES")
    )
    # 19:00 in Tokyo: open. Los Angeles is at 03:00, so it waits until 09:00 there.
    assert tokyo.not_before is None
    la = notification(
        evaluate(
            rule, Event({**SEED_EVENT, "tz": "America/Los_Angeles"}), now=NOW, default_country="ES"
        )
    )
    assert la.not_before == datetime.datetime.fromisoformat("2026-06-17T09:00:00-07:00").timestamp()
    with pytest.raises(RenderError, match="policy.send_window.timezone: unknown time zone"):
        evaluate(rule, Event({**SEED_EVENT, "tz": "Nowhere/Town"}), now=NOW, default_country="ES")


def test_empty_dedupe_key_is_an_error(tmp_path: Path) -> None:
    rule = one_rule(
        tmp_path,
        LOAN_RULE.replace("{{ event.application_id }}:{{ event.stage }}", "{{ event.ref }}"),
    )
    with pytest.raises(RenderError, match="dedupe: renders empty"):
        evaluate(rule, Event({**SEED_EVENT, "ref": ""}), now=NOW, default_country="ES")


FALLBACKS = """\
    policy:
      fallback:
        - on: failed
          send:
            channel: crm
            body: {case: "{{ event.application_id }}", why: "{{ failure.reason }}", n: 3}
        - on: [expired]
          send:
            channel: mail
            to: "{{ event.email }}"
            subject: "Case {{ event.application_id }}"
            body: "Hello {{ event.first_name | title }}, {{ failure.status }}"
        - on: recipient
          send:
            channel: whatsapp
            template: short
            namespace: ns
            language: en
            text: "<<1>>: <<2>>"
            params: {1: "{{ event.first_name | title }}", 2: "{{ failure.reason }}"}
"""


def test_render_send_for_fallbacks(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE + FALLBACKS)
    event = Event({**SEED_EVENT, "email": "maria@example.test"})
    failure = {"status": "failed", "reason": "not a WhatsApp user", "code": 131026, "attempts": 1}
    steps = rule.policy.fallback
    assert [s.on for s in steps] == [
        frozenset({"failed"}),
        frozenset({"expired"}),
        frozenset({"recipient"}),
    ]
    crm = render_send(
        rule, steps[0].send, event, extra={"failure": failure}, default_country="ES", now=NOW
    )
    assert crm == Message(
        "crm", "34600111222", {"body": {"case": "12345", "why": "not a WhatsApp user", "n": 3}}
    )
    mail = render_send(rule, steps[1].send, event, extra={"failure": failure}, default_country="ES")
    assert mail.to == "maria@example.test"
    assert mail.fields == {
        "to": "maria@example.test",
        "subject": "Case 12345",
        "body": "Hello Maria, failed",
    }
    short = render_send(
        rule, steps[2].send, event, extra={"failure": failure, "now": NOW}, default_country="ES"
    )
    assert short.fields["text"] == "Maria: not a WhatsApp user"
    assert short.fields["template"] == "short"


def test_render_send_needs_the_failure_it_uses(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE + FALLBACKS)
    with pytest.raises(
        RenderError, match="policy.fallback\\[0\\].send.body.why: 'failure' is undefined"
    ):
        render_send(
            rule, rule.policy.fallback[0].send, Event(SEED_EVENT), extra={}, default_country="ES"
        )


def test_smtp_without_address_is_an_error(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, LOAN_RULE + FALLBACKS)
    with pytest.raises(RenderError, match="send.to: the address is empty"):
        render_send(
            rule,
            rule.policy.fallback[1].send,
            Event({**SEED_EVENT, "email": " "}),
            extra={"failure": {"status": "x"}},
            default_country="ES",
        )


def test_trigger_and_now_are_in_scope(tmp_path: Path) -> None:
    rule = one_rule(
        tmp_path,
        LOAN_RULE.replace(
            "{{ event.application_id }}:{{ event.stage }}",
            "{{ trigger.file }}:{{ trigger.row }}:{{ now.strftime('%Y-%m-%d') }}",
        ),
    )
    found = notification(
        evaluate(
            rule, Event(SEED_EVENT, {"file": "a.csv", "row": 7}), now=NOW, default_country="ES"
        )
    )
    assert found.dedupe_key == "a.csv:7:2026-06-17"
