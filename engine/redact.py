"""Keep personal data and secrets out of logs, the ledger and what is shown: phone numbers
show only their last 4 digits, secrets become ``***``.

:func:`redact` is the logs' redaction (known secret values as whole tokens, ``Bearer`` values,
secret-looking query parameters and ``name: value`` pairs, phone numbers). Text that came from
outside — provider answers, a webhook receiver's error body, exception messages that carry URLs
or headers — goes through :func:`redact_outside` (the same, with the secrets of the config in
force, which the log filter hands over with :func:`remember_secrets`) before it is stored in
the ledger (history, reason) or shown (issue 15.2): :func:`redact_outcome`, :func:`redact_ack`.

Only phone numbers are masked, not every run of digits: addresses (``127.0.0.1:8025``), dates
and times, file positions (``rules/x.yaml:5:13``), ports, durations and sizes (``1500ms``,
``0.123456 s``), numbers inside identifiers (``wamid.HBgL…``, ``a456-4266…``) and counts stay
as written. A run of digits is a phone number when it is written like one (a ``+`` or ``00``
prefix, or groups separated by spaces, dashes, dots or parentheses, 7 to 15 digits), or, as
plain digits, when phonenumbers finds it a possible international number (``34600111222``) or
it has at least 9 digits and could be a national one (``600111222``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

import phonenumbers
from phonenumbers import ValidationResult

from nextstep.engine.model import Ack, Outcome

REDACTED = "***"
_SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|authorization", re.I)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_SECRET_NAME = r"[\w-]*(?:token|secret|passw(?:or)?d|api[_-]?key|apikey|auth\w*|signature|sig)"
# ?api_key=…, &token=…: secret-looking query parameters (and form fields).
_QUERY_TOKEN = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&\s\"'<>]+")
# "X-Api-Key": "…", authorization: …, token=… in echoed headers and JSON bodies.
_NAMED_SECRET = re.compile(
    rf"(?i)((?<![\w-])[\"']?{_SECRET_NAME}[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?+)"
    r"(?!\*\*\*)[^\"'\s,;&}<>]+"
)


def secrets_in(value: Any, key: str = "") -> set[str]:
    """Every string under a secret-looking key (token, secret, password…) inside ``value``."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for k, v in value.items():
            found |= secrets_in(v, str(k))
    elif isinstance(value, list | tuple):
        for item in value:
            found |= secrets_in(item, key)
    elif isinstance(value, str) and _SECRET_KEY.search(key) and len(value) >= 4:
        found.add(value)
        # "Bearer abc" headers: the bare token may be logged without its scheme too.
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in {"bearer", "basic", "token"} and len(rest) >= 4:
            found.add(rest)
    return found


class Secrets:
    """Known secret values, scrubbed where they appear as a whole token: not inside a longer
    word (a one-letter token must not turn ``next_step`` into ``ne***t_step``), nor a part of
    a longer token. One regular expression, longest values first."""

    __slots__ = ("pattern", "values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        ordered = sorted({v for v in values if v}, key=len, reverse=True)
        alternatives = "|".join(map(re.escape, ordered))
        self.values = tuple(ordered)
        self.pattern = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])") if ordered else None

    def scrub(self, text: str) -> str:
        """``text`` with every whole occurrence of a secret replaced by ``***``."""
        if self.pattern is None:
            return text
        # Plain substring tests first: the pattern's lookarounds cost ~10 µs on a provider's
        # answer, and nearly every text holds no secret at all.
        for value in self.values:
            if value in text:
                return self.pattern.sub(REDACTED, text)
        return text


# A cheap look for any word the patterns above need: most texts (a provider's "accepted"
# answer) have none, and the patterns cost tens of microseconds each (the send path redacts
# every outcome). Plain substring tests, written out: a regular expression alternation, or a
# generator over the words, costs more.


def _names_a_secret(lowered: str) -> bool:
    return (
        "bearer" in lowered
        or "basic" in lowered
        or "token" in lowered
        or "secret" in lowered
        or "passw" in lowered
        or "key" in lowered
        or "auth" in lowered
        or "sig" in lowered
    )


def redact(text: str, secrets: Iterable[str] | Secrets = ()) -> str:
    """``text`` with known secrets, bearer tokens, secret-looking query values and named
    values (``X-Api-Key: …``), and phone numbers hidden."""
    known = secrets if isinstance(secrets, Secrets) else Secrets(secrets)
    text = known.scrub(text)
    if _names_a_secret(text.lower()):
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _QUERY_TOKEN.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
        text = _NAMED_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return mask_phones_in(text)


_known = Secrets()


def remember_secrets(values: Iterable[str]) -> None:
    """The secret values of the config in force (the log filter calls this on every load)."""
    global _known
    _known = Secrets(values)


def redact_outside(text: str) -> str:
    """Text that came from outside, made safe to store and show (see the module docstring)."""
    return redact(text, _known) if text else text


def redact_outcome(outcome: Outcome) -> Outcome:
    """An outcome whose provider texts (``reason``, ``answer``) are safe to store."""
    reason, answer = redact_outside(outcome.reason), redact_outside(outcome.answer)
    if reason == outcome.reason and answer == outcome.answer:
        return outcome
    # Field by field: dataclasses.replace looks every field up again (a few µs, per send).
    return Outcome(
        outcome.kind,
        reason,
        outcome.provider_id,
        outcome.code,
        outcome.http_status,
        outcome.retry_after,
        answer,
        outcome.pause,
        outcome.unreachable,
    )


def redact_ack(ack: Ack) -> Ack:
    """An ack whose error text is safe to store."""
    error = redact_outside(ack.error)
    return ack if error == ack.error else dataclasses.replace(ack, error=error)


def redact_tree(value: Any) -> Any:
    """Every string inside a JSON-like document through :func:`redact_outside`."""
    if isinstance(value, str):
        return redact_outside(value)
    if isinstance(value, Mapping):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v) for v in value]
    return value


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Digit runs that are never phone numbers, left alone before looking for phones.
_NOT_PHONES = re.compile(
    rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?::\d{{1,5}})?(?![\w.]*\d)"  # IPv4[:port]
    r"|\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"  # ISO date[time]
    r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{4}\b"  # 20/06/2026
    r"|\b\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\b"  # 10:30, 10:30:00.5
    r"|:\d+(?::\d+)+\b"  # :5:13 (a file position)
)
_CANDIDATE = re.compile(r"(?:\+|\b00|\()?\d(?:[ \-.()]{0,2}\d)*")
# Fast paths (the send path masks every provider answer): a messenger chat id
# (``34600111222@c.us``) is masked at once, and a text without 7 digits written together can
# hold no phone number.
_DIGIT = re.compile(r"[0-9]")
_LONG_RUN = re.compile(r"\d(?:[ \-.()]{0,2}\d){6}")
_PLAIN_LENGTHS = range(7, 16)


def mask_phone(phone: str) -> str:
    """``34600111222`` → ``*******1222``."""
    digits = phone if phone.isascii() and phone.isdigit() else re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_phones_in(text: str) -> str:
    """Mask every phone number inside free text (log messages, provider answers)."""
    # ASCII without 0-9 holds no digit at all (a regular expression looks in C; str.isdigit
    # also counts other scripts' digits, so any other text takes the character-wise look).
    if not (_DIGIT.search(text) if text.isascii() else any(c.isdigit() for c in text)):
        return text
    if "@" in text:
        text = _mask_chat_ids(text)
    if not _LONG_RUN.search(text):
        return text
    parts, last = [], 0
    for kept in _NOT_PHONES.finditer(text):
        parts += [_mask(text, last, kept.start()), kept.group(0)]
        last = kept.end()
    parts.append(_mask(text, last, len(text)))
    return "".join(parts)


def _mask_chat_ids(text: str) -> str:
    """Every ``<7 to 15 digits>@`` (a messenger chat id) masked; found from each ``@``
    backwards, which costs less than a regular expression scanning every position."""
    out: list[str] = []
    last, at = 0, text.find("@")
    while at != -1:
        start = _digits_before(text, last, at)
        before = text[start - 1] if start else " "
        if 7 <= at - start <= 15 and not (before.isalnum() or before in "_.*"):
            out += [text[last:start], mask_phone(text[start:at])]
            last = at
        at = text.find("@", at + 1)
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _digits_before(text: str, last: int, at: int) -> int:
    """Where the run of digits that ends at ``at`` starts (not before ``last``)."""
    # A chat id has at most 15 digits: 16 characters before the "@" tell whether the run is
    # one. ASCII is trimmed in C; other text is walked (str.isdigit counts every script's).
    window = text[max(last, at - 16) : at]
    if window.isascii():
        start = at - (len(window) - len(window.rstrip("0123456789")))
        return start  # 16 digits before the "@": too long for a chat id either way
    start = at
    while start > last and text[start - 1].isdigit():
        start -= 1
    return start


def _mask(text: str, start: int, end: int) -> str:
    segment = text[start:end]
    out, last = [], 0
    for match in _CANDIDATE.finditer(segment):
        if _is_phone(text, start + match.start(), start + match.end()):
            out += [segment[last : match.start()], mask_phone(match.group(0))]
            last = match.end()
    out.append(segment[last:])
    return "".join(out)


def _is_phone(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` (a run of digits and separators) is a phone number."""
    run = text[start:end]
    digits = re.sub(r"\D", "", run)
    if not 7 <= len(digits) <= 15:
        return False
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in "_." or after.isalnum() or after == "_":
        return False  # inside an identifier, a number with a unit (1500ms), a decimal
    if after == "." and end + 1 < len(text) and text[end + 1].isdigit():
        return False  # the integer part of a decimal
    if "." in run and not _dotted_phone(run):
        return False  # a version, a decimal
    if run.startswith(("+", "00")) or re.search(r"\d[ \-.()]+\d", run):
        return True  # written like a phone number
    if after == "@" and run.isdigit():
        return True  # a chat id (34600111222@c.us): no need to ask phonenumbers
    return _plain_phone(digits)


def _dotted_phone(run: str) -> bool:
    groups = run.strip("()+").split(".")
    return len(groups) >= 3 and all(len(g.strip(" -()")) >= 2 for g in groups)


def _plain_phone(digits: str) -> bool:
    if len(digits) not in _PLAIN_LENGTHS:
        return False
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return len(digits) >= 9
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.IS_POSSIBLE:
        return True
    return reason == ValidationResult.IS_POSSIBLE_LOCAL_ONLY and len(digits) >= 9
