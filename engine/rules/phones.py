"""Phone numbers as channels address them: international digits, 6 to 15 of them, no ``+``.

:func:`normalise_phone` reads what integrators write (``+34 600 111 222``, ``600111222`` with a
default region, ``0034…``) for a rule's ``to:`` and the ``phone`` filter. Pure; a number that
cannot be read raises :class:`PhoneError` with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers

from nextstep.engine.rules.compat import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

# What may separate the digits of a phone number: every whitespace character (all of them lie
# below U+3001) and - ( ) . / (a translate table is several times faster than a regex).
_PHONE_NOISE = dict.fromkeys(
    [ord(c) for c in map(chr, range(0x3001)) if c.isspace()] + [ord(c) for c in "-()./"]
)
_DIGITS = re.compile(r"[0-9]{6,15}")
_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number (add the area code)",
}


class PhoneError(ValueError):
    """A text is not a phone number that can be reached; the message says why."""


@lru_cache(maxsize=65536)
def normalise_phone(raw: str, default_country: str | None) -> str:
    """International digits without ``+`` (``+34 600 111 222`` → ``34600111222``).

    A number written without ``+``/``00`` is read in ``default_country``; if that reading is
    impossible and the text is already 6–15 digits, it is taken as international. Raises
    PhoneError with the reason when no reading gives a possible number.
    """
    return _normalise(raw, default_country, fast=True)


def _normalise(raw: str, default_country: str | None, *, fast: bool) -> str:
    text = raw.replace(" ", "")
    if not (text.isascii() and text.lstrip("+").isdigit()):
        text = raw.translate(_PHONE_NOISE)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text:
        raise PhoneError("the phone number is empty")
    if not text.lstrip("+").isdecimal() or text.count("+") > 1:
        raise PhoneError(f"{raw!r} is not a phone number")
    if text.startswith("+"):
        quick = _fast_international(text[1:]) if fast else None
        return quick or _international(text, None, raw)
    if default_country:
        quick = _fast_national(text, default_country) if fast else None
        if quick:
            return quick
        try:
            return _international(text, default_country, raw)
        except PhoneError as national:
            if _DIGITS.fullmatch(text):
                try:
                    return _international("+" + text, None, raw)
                except PhoneError:
                    raise national from None
            raise
    if _DIGITS.fullmatch(text) and not text.startswith("0"):
        return _international("+" + text, None, raw)
    raise PhoneError(
        f"{raw!r} has no country code (write it as +<country><number> or set default_country)"
    )


# -- fast path ---------------------------------------------------------------------------------
# phonenumbers.parse costs ~30 µs; most numbers in a CRM export are plain (+34600111222 or
# 600111222). For those the answer is country code + the digits as written, provided nothing
# would be stripped (trunk prefix, IDD, a repeated country code) and the length is possible —
# exactly what parse + is_possible_number decide. Anything else takes the slow, exact path.


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    lengths: frozenset[int]
    national_prefix: re.Pattern[str] | None
    idd: re.Pattern[str] | None


@cache
def _region(country_code: int, region: str | None) -> _Region | None:
    main = phonenumbers.region_code_for_country_code(country_code)
    lengths_of = PhoneMetadata.metadata_for_region_or_calling_code(country_code, main)
    parsing = PhoneMetadata.metadata_for_region(region) if region else lengths_of
    if lengths_of is None or parsing is None or lengths_of.general_desc is None:
        return None
    prefix = parsing.national_prefix_for_parsing or parsing.national_prefix
    idd = parsing.international_prefix if region else None
    return _Region(
        str(country_code),
        frozenset(lengths_of.general_desc.possible_length),
        re.compile(prefix) if prefix else None,
        re.compile(idd) if idd else None,
    )


@cache
def _calling_code(prefix: str) -> tuple[int, _Region | None]:
    """The country calling code a number starting with these (up to 3) digits has: its length
    and region facts, ``(0, None)`` when there is none."""
    for size in (1, 2, 3):
        code = int(prefix[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return size, _region(code, None)
    return 0, None


def _fast_international(digits: str) -> str | None:
    if not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return None
    size, info = _calling_code(digits[:3])
    national = digits[size:]
    if info is None or len(national) not in info.lengths or not 6 <= len(digits) <= 15:
        return None
    if info.national_prefix and info.national_prefix.match(national):
        return None
    return digits


def _fast_national(digits: str, region: str) -> str | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or not (digits.isascii() and digits.isdigit()):
        return None
    info = _region(metadata.country_code, region)
    if info is None or len(digits) not in info.lengths or digits.startswith(info.code):
        return None
    if (info.national_prefix and info.national_prefix.match(digits)) or (
        info.idd and info.idd.match(digits)
    ):
        return None
    result = info.code + digits
    return result if 6 <= len(result) <= 15 else None


def _international(text: str, region: str | None, raw: str) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"{raw!r} is not a phone number ({_parse_reason(exc)})") from None
    result = phonenumbers.is_possible_number_with_reason(number)
    if result is not phonenumbers.ValidationResult.IS_POSSIBLE:
        where = f" for {region}" if region else ""
        reason = _REASONS.get(result, "not a possible number")
        raise PhoneError(f"{raw!r} is not a possible phone number{where}: {reason}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = _settled(e164[1:], number.country_code)
    if not _DIGITS.fullmatch(digits):
        raise PhoneError(f"{raw!r} gives {len(digits)} digits; an international number has 6 to 15")
    return digits


def _settled(digits: str, country_code: int | None) -> str:
    """The reading of ``+digits`` that reading again leaves alone. After some country codes
    phonenumbers takes a leading 0 of the rest for a national prefix (+20 0…), so the first
    result could change when normalised again; real numbers are settled at once."""
    for _ in range(4):
        if country_code is None:
            return digits
        info = _region(country_code, None)
        national = digits[len(str(country_code)) :]
        if info is None or not info.national_prefix or not info.national_prefix.match(national):
            return digits
        try:
            number = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            return digits
        again = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
        if again == digits or not phonenumbers.is_possible_number(number):
            return digits
        digits, country_code = again, number.country_code
    return digits


def _parse_reason(exc: phonenumbers.NumberParseException) -> str:
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "unreadable")
