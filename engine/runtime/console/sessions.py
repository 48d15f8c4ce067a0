"""Signed session cookies and CSRF tokens.

A session is ``base64(JSON) . base64(HMAC-SHA256)`` in one HttpOnly, SameSite=Strict cookie:
the user, the role, when it ends and the session's CSRF token. Nothing is kept on the server,
so a restart with the same ``session_secret`` keeps everyone logged in, and one without a
configured secret (a new one per start) logs everyone out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
from dataclasses import dataclass

COOKIE = "nextstep_session"
LOGIN_COOKIE = "nextstep_login"  # the CSRF token of the login form, before any session
_LETTERS = string.ascii_letters


@dataclass(frozen=True, slots=True)
class Session:
    """Who is logged in, until when, and the token every form of the session carries."""

    user: str
    role: str
    expires: float
    csrf: str

    @property
    def operator(self) -> bool:
        """True for operators (release, cancel, full numbers on the trace page)."""
        return self.role == "operator"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks cookie values with one secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"nextstep-console:" + secret.encode()).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def sign(self, value: object) -> str:
        """``value`` (JSON-ready) as a signed cookie value."""
        payload = _b64(json.dumps(value, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def unsign(self, signed: str) -> object | None:
        """The value of a signed cookie; None when the signature does not hold."""
        payload, _, mac = signed.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            value: object = json.loads(_unb64(payload))
        except ValueError:
            return None
        return value

    def session(self, user: str, role: str, expires: float) -> tuple[Session, str]:
        """A new session (with a fresh CSRF token) and its cookie value."""
        session = Session(user, role, expires, new_token())
        value = {"u": user, "r": role, "e": expires, "c": session.csrf}
        return session, self.sign(value)

    def read_session(self, signed: str | None, now: float) -> Session | None:
        """The session of a cookie; None when absent, forged or over."""
        value = self.unsign(signed) if signed else None
        if not isinstance(value, dict):
            return None
        try:
            session = Session(str(value["u"]), str(value["r"]), float(value["e"]), str(value["c"]))
        except (KeyError, TypeError, ValueError):
            return None
        return session if session.expires > now else None


def new_token() -> str:
    """A random token of letters only (no digit runs that phone masking could touch)."""
    return "".join(secrets.choice(_LETTERS) for _ in range(32))


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())
