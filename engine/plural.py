"""Counted words for messages and logs: ``1 rule``, ``3 rules`` (never ``1 rules``)."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, in the plural unless ``count`` is 1 (``many`` for irregular
    plurals); thousands separated (``1,500 rows``)."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"
