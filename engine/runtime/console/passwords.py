"""Password hashes of console users: scrypt from the standard library, in one line of text.

``scrypt$N$r$p$SALT$HASH`` (salt and hash in base64). ``nextstep console hash-password``
prints one; the config keeps it under ``server.console.users[].password_hash``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1  # scrypt's cost: about 16 MiB and a few tens of ms per check
_LENGTH = 32
_MAX_N = 2**20  # a hash claiming more work than this is refused rather than computed


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_LENGTH, maxmem=256 * n * r
    )


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """The line to put in the config for ``password``."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, r, p)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return "$".join(("scrypt", str(n), str(r), str(p), *encoded))


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` is the one ``encoded`` was made from (constant-time compare);
    False for a malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = base64.b64decode(parts[4]), base64.b64decode(parts[5])
    except ValueError:
        return False
    if not (1 < n <= _MAX_N and 0 < r <= 32 and 0 < p <= 16):
        return False
    try:
        candidate = _scrypt(password, salt, n, r, p)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, digest)


@functools.cache
def dummy_hash() -> str:
    """Checked against when the user name is unknown, so an answer takes as long either way."""
    return hash_password(secrets.token_urlsafe(16))
