"""Logs: text and JSON lines, phone numbers masked, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN
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
