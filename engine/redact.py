"""Keep personal data and secrets out of logs: phone numbers show only their last 4 digits.

Only phone numbers are masked, not every run of digits: addresses (``127.0.0.1:8025``), dates
and times, file positions (``rules/x.yaml:5:13``), ports, durations and sizes (``1500ms``,
``0.123456 s``), numbers inside identifiers (``wamid.HBgL…``, ``a456-4266…``) and counts stay
as written. A run of digits is a phone number when it is written like one (a ``+`` or ``00``
prefix, or groups separated by spaces, dashes, dots or parentheses, 7 to 15 digits), or, as
plain digits, when phonenumbers finds it a possible international number (``34600111222``) or
it has at least 9 digits and could be a national one (``600111222``).
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import ValidationResult

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
_PLAIN_LENGTHS = range(7, 16)


def mask_phone(phone: str) -> str:
    """``34600111222`` → ``*******1222``."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_phones_in(text: str) -> str:
    """Mask every phone number inside free text (log messages, provider answers)."""
    if not any(c.isdigit() for c in text):
        return text
    parts, last = [], 0
    for kept in _NOT_PHONES.finditer(text):
        parts += [_mask(text, last, kept.start()), kept.group(0)]
        last = kept.end()
    parts.append(_mask(text, last, len(text)))
    return "".join(parts)


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
