"""Phone numbers as each role may see them: viewers see the last 4 digits everywhere,
operators see a whole number on the trace page only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nextstep.engine.redact import mask_phone
from nextstep.engine.runtime.logs import redact


@dataclass(frozen=True, slots=True)
class Masker:
    """Masks a page's personal data, or leaves it whole (``full``)."""

    full: bool = False

    def phone(self, number: str) -> str:
        """A recipient: whole, or its last 4 digits."""
        if self.full or "@" in number:
            return number
        return mask_phone(number) if any(c.isdigit() for c in number) else number

    def text(self, text: str, recipient: str = "") -> str:
        """Free text: the recipient and every phone-like run of digits masked (dates, IP
        addresses left alone)."""
        if self.full:
            return text
        if recipient and any(c.isdigit() for c in recipient) and "@" not in recipient:
            text = text.replace(recipient, mask_phone(recipient))
        return redact(text)

    def json(self, value: Any, recipient: str = "") -> str:
        """``value`` as indented JSON text, masked as :meth:`text`."""
        shown = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
        return self.text(shown, recipient)


MASKED = Masker(full=False)
