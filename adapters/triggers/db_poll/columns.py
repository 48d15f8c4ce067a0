"""The columns a ``db_poll`` query returns, read from its text when that can be done safely.

``SELECT id, c.case_ref, client_name AS name, count(*) n FROM …`` gives ``id``, ``case_ref``,
``name``, ``n``. ``*``, an expression without an alias, or anything this reader does not follow
gives None (the fields are then not checked). Only the first ``SELECT`` outside parentheses
counts (the one after ``WITH …``, the first of a ``UNION``). PostgreSQL folds unquoted names to
lower case, as its rows then do; the other databases return them as written.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_QUOTED = re.compile(r'^(?:"([^"]+)"|`([^`]+)`|\[([^\]]+)\])$')
_KEYWORDS = frozenset({"end", "null", "true", "false", "distinct", "all", "from", "select"})
_OPEN, _CLOSE = "([", ")]"
_ENDS_EXPRESSION = re.compile(r"[\w)\"`\]']$")


def select_columns(query: str, *, fold_case: bool = False) -> frozenset[str] | None:
    """The result's column names, or None when they cannot be read from the text."""
    items = _select_list(_without_comments(query))
    if not items:
        return None
    names = [_name(item, fold_case) for item in items]
    if any(name is None for name in names):
        return None
    return frozenset(name for name in names if name is not None)


def _without_comments(query: str) -> str:
    query = re.sub(r"/\*.*?\*/", " ", query, flags=re.S)
    return re.sub(r"--[^\n]*", " ", query)


def _select_list(query: str) -> list[str] | None:
    """The items of the first top-level SELECT, split at top-level commas."""
    depth, quote, start, items = 0, "", None, []
    i = 0
    while i < len(query):
        char = query[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif depth == 0 and (char.isalpha() or char == "_"):
            word = _WORD.match(query, i)
            assert word is not None
            lowered = word.group(0).lower()
            if start is None and lowered == "select":
                start = word.end()
            elif start is not None and lowered == "from":
                items.append(query[start:i])
                return _clean(items)
            i = word.end()
            continue
        elif depth == 0 and char == "," and start is not None:
            items.append(query[start:i])
            start = i + 1
        i += 1
    if start is None:
        return None
    items.append(query[start:])
    return _clean(items)


def _clean(items: list[str]) -> list[str]:
    out = [item.strip() for item in items]
    if out:
        out[0] = re.sub(r"(?i)^(distinct|all)\s+", "", out[0])
    return out


def _name(item: str, fold_case: bool) -> str | None:
    """The column name one select item gives, or None."""
    if not item or item == "*" or item.endswith(".*"):
        return None
    alias = re.match(r"(?is)^(.*?)\s+(as\s+)?(\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|\w+)$", item)
    # `expr AS name`, or `expr name` after a complete expression (not `a + b`).
    if (
        alias
        and alias.group(1).strip()
        and (alias.group(2) or _ENDS_EXPRESSION.search(alias.group(1)))
    ):
        return _identifier(alias.group(3), fold_case)
    last = item.rsplit(".", 1)[-1]  # t.column, schema.t.column
    return _identifier(last, fold_case)


def _identifier(text: str, fold_case: bool) -> str | None:
    quoted = _QUOTED.match(text)
    if quoted:
        return next(g for g in quoted.groups() if g)
    if not _WORD.fullmatch(text) or text.lower() in _KEYWORDS:
        return None
    return text.lower() if fold_case else text
