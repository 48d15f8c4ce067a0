"""Stop and start words: a person's whole message, trimmed and compared without case, accents
or surrounding punctuation, against a channel's lists (``channels.<name>.keywords`` in
nextstep.yaml; English and Spanish defaults). Pure.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nextstep.engine.model import ALL_CHANNELS

Keyword = Literal["stop", "start"]

DEFAULT_STOP = (
    "STOP",
    "STOP ALL",
    "STOPALL",
    "UNSUBSCRIBE",
    "OPT OUT",
    "OPT-OUT",
    "OPTOUT",
    "END",
    "QUIT",
    "BAJA",
    "DAR DE BAJA",
    "DARME DE BAJA",
    "PARAR",
    "ALTO",
    "DETENER",
    "NO MÁS",
    "NO MÁS MENSAJES",
)
DEFAULT_START = (
    "START",
    "UNSTOP",
    "SUBSCRIBE",
    "OPT IN",
    "OPT-IN",
    "OPTIN",
    "ALTA",
    "DAR DE ALTA",
    "DARME DE ALTA",
    "REANUDAR",
    "SUSCRIBIR",
)
# Around a word, not part of it: "STOP.", "¡Baja!", "«stop»".
_PUNCTUATION = " \t\r\n.,;:!¡?¿'\"«»()[]-_*~"


def normalise(text: str) -> str:
    """``text`` as keywords are compared: without accents, case, surrounding punctuation and
    repeated spaces (" ¡Bája! " → "baja")."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().strip(_PUNCTUATION).split())


@dataclass(frozen=True, slots=True)
class Keywords:
    """One channel's words: ``stop`` opts the sender out of ``scope`` (this channel, or every
    channel), ``start`` lifts the sender's opt-outs of this channel and of every channel;
    ``confirm`` holds the answers sent back (empty: none)."""

    stop: frozenset[str]
    start: frozenset[str]
    scope: Literal["channel", "all"] = "channel"
    confirm_stop: str = ""
    confirm_start: str = ""

    def classify(self, text: str) -> Keyword | None:
        """ "stop", "start", or None for any other message."""
        if not text or len(text) > 64:
            return None
        word = normalise(text)
        if word in self.stop:
            return "stop"
        if word in self.start:
            return "start"
        return None

    def optout_channel(self, channel: str) -> str:
        """The channel a stop word opts out of."""
        return ALL_CHANNELS if self.scope == "all" else channel

    def confirmation(self, keyword: Keyword) -> str:
        """The answer to a stop or start word (empty: none)."""
        return self.confirm_stop if keyword == "stop" else self.confirm_start


def _words(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(w for w in (normalise(str(v)) for v in values) if w)


def keywords_from(settings: Mapping[str, Any]) -> Keywords | None:
    """A channel's keywords from its settings (``keywords:``; absent: the defaults); None when
    they are turned off (``keywords: false``)."""
    block = settings.get("keywords", True)
    if block is False:
        return None
    if not isinstance(block, Mapping):
        block = {}
    confirm = block.get("confirm")
    confirm = confirm if isinstance(confirm, Mapping) else {}
    stop, start = block.get("stop"), block.get("start")
    return Keywords(
        stop=_words(stop if isinstance(stop, list) else DEFAULT_STOP),
        start=_words(start if isinstance(start, list) else DEFAULT_START),
        scope="all" if block.get("scope") == "all" else "channel",
        confirm_stop=str(confirm.get("stop") or ""),
        confirm_start=str(confirm.get("start") or ""),
    )
