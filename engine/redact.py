"""Keep personal data and secrets out of logs: phone numbers show only their last 4 digits."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\+?\d[\d \-().]{5,}\d")


def mask_phone(phone: str) -> str:
    """``34600111222`` → ``*******1222``."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_phones_in(text: str) -> str:
    """Mask every phone-like run of digits inside free text (log messages, provider answers)."""
    return _DIGITS.sub(lambda m: mask_phone(m.group(0)), text)
