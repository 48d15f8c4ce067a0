"""The pieces under the console's pages: passwords, sessions, masking, the export, the config
keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nextstep.engine.errors import ConfigError
from nextstep.engine.ledger.reads import reason_kind
from nextstep.engine.rules.config import load_config
from nextstep.engine.runtime.console.export import cell, row
from nextstep.engine.runtime.console.masking import MASKED, Masker
from nextstep.engine.runtime.console.overview import bars
from nextstep.engine.runtime.console.passwords import hash_password, verify_password
from nextstep.engine.runtime.console.sessions import Signer, same_token
from tests.support.notifications import T0


def test_passwords_and_sessions() -> None:
    hashed = hash_password("s3cret pass", n=2**10)
    assert verify_password("s3cret pass", hashed)
    assert not verify_password("s3cret pas", hashed)
    assert not verify_password("x", "scrypt$bad")
    signer = Signer("k" * 40)
    session, cookie = signer.session("olga", "operator", T0 + 60)
    assert signer.read_session(cookie, T0) == session
    assert signer.read_session(cookie, T0 + 61) is None  # over
    assert Signer("other" * 10).read_session(cookie, T0) is None  # forged
    assert signer.read_session(cookie[:-2] + "AA", T0) is None
    assert not any(c.isdigit() for c in session.csrf)
    assert same_token(session.csrf, session.csrf) and not same_token(None, session.csrf)


def test_masking_keeps_the_last_four_digits() -> None:
    assert MASKED.phone("34600111222") == "*******1222"
    assert MASKED.phone("ops@example.com") == "ops@example.com"
    text = MASKED.json({"phone": "+34 600 111 222", "due": "2026-06-20"}, "34600111222")
    assert "600 111 222" not in text and "2026-06-20" in text
    assert Masker(full=True).phone("34600111222") == "34600111222"
    assert reason_kind("duplicate of #12") == "duplicate of #…"


def test_export_cells_are_quoted_and_never_formulas() -> None:
    assert cell('say "hi"') == '"say ""hi"""'
    assert cell("=1+1") == '"\'=1+1"'
    assert row([1, None]) == '"1",""\r\n'
    assert [b.height for b in bars([0, 5, 10])] == [0.0, 10.0, 20.0]


def _config(tmp_path: Path, console: str) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    path = tmp_path / "nextstep.yaml"
    path.write_text(f"rules: rules/\nserver:\n  console:\n{textwrap.indent(console, '    ')}")
    return path


def test_console_config_is_read_and_checked(tmp_path: Path) -> None:
    hashed = hash_password("pw", n=2**10)
    good = f'users: [{{name: olga, role: operator, password_hash: "{hashed}"}}]\nrefresh: 5s\n'
    console = load_config(_config(tmp_path, good)).server.console
    assert console is not None and console.refresh == 5.0 and console.session_secret is None
    assert console.user("olga") is not None and console.user("nobody") is None
    bad = 'session_secret: short\nusers: [{name: olga, role: boss, password_hash: "x"}]\n'
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, bad))
    text = str(caught.value)
    assert "32 or more" in text and "boss" in text and "hash-password" in text
