"""JSON columns, the same for every backend: UTF-8 JSON text, written with orjson.

Text, not a native JSON type: the ledger never queries inside these documents, text keeps the
keys' order, and it holds what a stricter JSON type refuses (``\\u0000``, a lone surrogate).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    """Values JSON has no type for (Decimal, bytes, sets…) are kept as their text."""
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> str:
    """JSON text for a column; dates become ISO strings, unknown types their ``str``."""
    try:
        return orjson.dumps(value, default=_fallback, option=_ORJSON_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        # orjson refuses integers beyond 64 bits and lone surrogates; the stdlib takes both.
        return json.dumps(value, default=_fallback)


def loads(text: str | bytes | None) -> Any:
    """The value of a JSON column (None stays None)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
