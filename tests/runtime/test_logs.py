"""Logs: text and JSON lines, phone numbers masked, secrets never written."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN
from nextstep.engine.model import Outcome, OutcomeKind
from nextstep.engine.redact import Secrets, redact_outcome
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.logs import config_secrets, configure_logging, redact, secrets_in
from tests.runtime.harness import EVENT_TOKEN, WEBHOOK_SECRET, Workspace


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_mask_phones_and_secrets(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("json", stream=out, secrets={"s3cr3t-token"})
    log = logging.getLogger("nextstep.test")
    log.info("sent to %s with token %s", "+34 600 111 222", "s3cr3t-token", extra={"rule": "r1"})
    doc = json.loads(out.getvalue())
    assert doc["msg"] == "sent to *******1222 with token ***"
    assert doc["level"] == "info"
    assert doc["logger"] == "nextstep.test"
    assert doc["rule"] == "r1"


def test_exception_text_is_scrubbed(restore_root: None) -> None:
    out = io.StringIO()
    redacting = configure_logging("text", stream=out)
    redacting.set_secrets({"hunter22"})
    try:
        raise RuntimeError("POST https://x/abc?token=hunter22 failed for 34600111222")
    except RuntimeError:
        logging.getLogger("t").exception("request failed")
    text = out.getvalue()
    assert "hunter22" not in text
    assert "34600111222" not in text
    assert "*******1222" in text
    assert "RuntimeError" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Authorization: Bearer abc.def-123", "Authorization: Bearer ***", id="bearer"),
        pytest.param("GET /x?token=abc&y=1", "GET /x?token=***&y=1", id="query-token"),
        pytest.param("phone 600111222", "phone *****1222", id="phone"),
        pytest.param("rule loans v3", "rule loans v3", id="untouched"),
        pytest.param(
            "listening on http://127.0.0.1:38071",
            "listening on http://127.0.0.1:38071",
            id="address",
        ),
        pytest.param(
            "at 2026-06-20 12:00:01 to 600111222",
            "at 2026-06-20 12:00:01 to *****1222",
            id="date-then-phone",
        ),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_secrets_found_under_secret_like_keys() -> None:
    settings = {
        "base_url": "http://127.0.0.1:1",
        "token": "tok-123",
        "headers": {"Authorization": "Bearer crm-abc"},
        "nested": [{"password": "pw-xyz"}],
        "short_token": "ab",
    }
    assert secrets_in(settings) == {"tok-123", "Bearer crm-abc", "crm-abc", "pw-xyz"}


def test_config_secrets_cover_tokens_and_channel_credentials(tmp_path: Path) -> None:
    space = Workspace(tmp_path, "http://127.0.0.1:9")
    space.write_config()
    config = load_config(space.config)
    assert config_secrets(config) >= {EVENT_TOKEN, WEBHOOK_SECRET, DEFAULT_TOKEN}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("SMTPConnectError: Error connecting to 127.0.0.1 on port 8025", id="ipv4"),
        pytest.param("Connect call failed ('127.0.0.1', 8025)", id="ipv4-tuple"),
        pytest.param("h.yaml:5:13: rule r: to: 'event.x' is undefined", id="file-position"),
        pytest.param("rules/h.yaml:5:1342: problem", id="long-column"),
        pytest.param("at 2026-06-20T10:00:00.123456+02:00 and 20/06/2026 10:30", id="dates"),
        pytest.param("took 0.123456 s, 1234567ms, 1766500000.123", id="durations"),
        pytest.param("notification 12345678 queued, row 1500000, ttl 86400000", id="ids-counts"),
        pytest.param("wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI5 and 123e4567-426614174000", id="ids"),
        pytest.param("version 3.11.4 on 10.0.0.12:8080", id="version-address"),
    ],
)
def test_digits_that_are_not_phone_numbers_stay(text: str) -> None:
    """Issue 12.3 / 15: an address was masked like a phone (`**7001`), and so was a column."""
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("to 34600111222", "to *******1222", id="international-digits"),
        pytest.param("to +34 600 111 222.", "to *******1222.", id="formatted"),
        pytest.param("0034600111222", "*********1222", id="00-prefix"),
        pytest.param("call 600-111-222 or 600.111.222", "call *****1222 or *****1222", id="seps"),
        pytest.param('{"to": "447700900123"}', '{"to": "********0123"}', id="json"),
        pytest.param("2026-06-20 600111222", "2026-06-20 *****1222", id="after-a-date"),
    ],
)
def test_phone_numbers_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_secret_is_scrubbed_as_a_whole_token_only() -> None:
    """Issue 12.3: with a one-character token every `x` became `***` (`ne***t_step`)."""
    assert redact("next_step x, x-ray, xx: x", ["x"]) == "next_step ***, x-ray, xx: ***"
    secret = "s3cr3t-webhook-value"
    text = f"POST /webhooks/1msg/{secret} ok; {secret}. ?token={secret} not-{secret}-x"
    assert (
        redact(text, [secret]) == "POST /webhooks/1msg/*** ok; ***. ?token=*** not-" + secret + "-x"
    )


def test_short_server_secrets_are_refused_at_their_place(tmp_path: Path) -> None:
    from nextstep.engine.errors import ConfigError

    (tmp_path / "rules").mkdir()
    path = tmp_path / "nextstep.yaml"
    path.write_text(
        "server:\n  event_token: x\n  webhook_secret: ${SECRET:-short-secret}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    found = [(p.line, p.path, p.message) for p in caught.value.problems]
    assert found == [
        (2, "server.event_token", found[0][2]),
        (3, "server.webhook_secret", found[1][2]),
    ]
    assert "is 1 character long; a secret needs at least 16" in found[0][2]
    assert "short-secret" not in found[1][2] and "is 12 characters long" in found[1][2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Sent to 34600111222@c.us", "Sent to *******1222@c.us", id="chat-id"),
        pytest.param("a@b 34600111222@c.us", "a@b *******1222@c.us", id="after-another-at"),
        pytest.param("x 1234567890123456@c.us", "x 1234567890123456@c.us", id="16-digits"),
        pytest.param("id a34600111222@c.us", "id a34600111222@c.us", id="inside-a-word"),
        pytest.param("à 34600111222@c.us", "à *******1222@c.us", id="non-ascii-text"),
        pytest.param(
            "é ３４６００１１１２２２@c.us", "é *******１２２２@c.us", id="fullwidth-digits"
        ),
        pytest.param("ünïcödé, no digits", "ünïcödé, no digits", id="non-ascii-no-digits"),
    ],
)
def test_chat_ids_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_known_secret_is_scrubbed_only_where_it_appears() -> None:
    known = Secrets(["tok-123", "other-secret"])
    assert known.scrub("no secret here") == "no secret here"
    assert known.scrub("a tok-123 b other-secret") == "a *** b ***"
    assert known.scrub("xtok-123 stays") == "xtok-123 stays"  # part of a longer token


def test_a_redacted_outcome_keeps_every_other_field() -> None:
    outcome = Outcome(
        OutcomeKind.TRANSIENT,
        "refused for 34600111222",
        "wamid.x",
        131056,
        429,
        6.0,
        '{"message": "Sent to 34600111222@c.us"}',
        2.0,
        True,
    )
    redacted = redact_outcome(outcome)
    assert redacted.reason == "refused for *******1222"
    assert redacted.answer == '{"message": "Sent to *******1222@c.us"}'
    for field in dataclasses.fields(Outcome):
        if field.name not in ("reason", "answer"):
            assert getattr(redacted, field.name) == getattr(outcome, field.name), field.name
