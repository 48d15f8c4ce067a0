"""WhatsApp's rules for a template message, checked before anything is sent.

* a body parameter is non-empty, has no newline or tab and no more than 4 consecutive spaces
  (Meta rejects the whole send with 132018 otherwise); ``normalise`` repairs, ``reject`` refuses;
* a body parameter has no other control character (NUL, ESC, DEL, C1 controls…: Unicode
  category Cc); ``normalise`` deletes them, ``reject`` refuses;
* the approved body with every ``<<n>>`` filled stays within 1024 characters (132005).

The one copy of these rules: the compiled send (:mod:`onemsg.send`) applies them when a message
is rendered, and the channel's preflight checks a message with them again before it is sent.
Everything here is pure; violations raise :class:`WhatsAppRuleError` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from nextstep.engine.plugins import Whitespace

MAX_BODY = 1024
MAX_SPACES = 4
VARIABLE = re.compile(r"<<(\d+)>>")
_META_VARIABLE = re.compile(r"\{\{\s*\d+\s*\}\}")

# Characters Meta treats as line breaks or tabs; any run of whitespace containing one is joined.
_BREAKS = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029"
_WHITE_RUN = re.compile(r"\s+")
_BAD = re.compile(rf"[{_BREAKS}]| {{{MAX_SPACES + 1}}}")
_TOO_MANY_SPACES = " " * (MAX_SPACES + 1)
# The other control characters (category Cc): never sent; normalise deletes them.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


class WhatsAppRuleError(ValueError):
    """A rendered message breaks one of WhatsApp's rules; the message says which and why."""


def variables(text: str) -> list[int]:
    """The variable numbers ``<<n>>`` used in an approved body, in order of appearance."""
    return [int(m) for m in VARIABLE.findall(text)]


def variable_problems(text: str, params: set[int]) -> list[tuple[int | None, str]]:
    """What is wrong between an approved body's ``<<n>>`` and the variable numbers that
    ``params`` supplies, both ways: ``(param number, or None for the text, message)``."""
    used = set(variables(text))
    shown = ", ".join(f"<<{n}>>" for n in sorted(used)) or "no variables"
    found: list[tuple[int | None, str]] = []
    if _META_VARIABLE.search(text):
        found.append((None, "write the template's variables as <<1>>, <<2>>…, not {{1}}"))
    have = ", ".join(str(k) for k in sorted(params)) or "none"
    found += [
        (None, f"<<{n}>> has no value in params (params has: {have})")
        for n in sorted(used - params)
    ]
    found += [(n, f"params.{n} is not used: the text has {shown}") for n in sorted(params - used)]
    gaps = sorted(set(range(1, max(used, default=0) + 1)) - used)
    if gaps:
        found.append(
            (None, f"variables are numbered from <<1>> without gaps; <<{gaps[0]}>> is missing")
        )
    control = control_character(text)
    if control is not None:
        found.append((None, f"the text contains the control character {control}"))
    bare = len(VARIABLE.sub("", text))
    if bare > MAX_BODY:
        found.append((None, f"the text is {bare} characters; WhatsApp allows {MAX_BODY}"))
    return found


def clean_param(value: str, mode: Whitespace) -> str:
    """Return the parameter as it may be sent, or raise WhatsAppRuleError.

    ``normalise`` deletes control characters other than line breaks and tabs, joins line
    breaks and tabs (with the spaces around them) into one space, shortens runs of more than 4
    spaces to one, and strips the ends; ``reject`` refuses all of them.
    """
    if value.isprintable() and _TOO_MANY_SPACES not in value:
        # Nothing to repair or refuse (see _bad), the usual case: only the ends to strip.
        if mode == "normalise":
            value = value.strip()
        if value.strip():
            return value
    elif mode == "normalise":
        value = _CONTROLS.sub("", value)
        if _bad(value):
            value = _WHITE_RUN.sub(_join_bad_run, value)
        value = value.strip()
        if value:
            return value
    else:
        control = control_character(value)
        if control is not None:
            raise WhatsAppRuleError(
                f"contains the control character {control} (use whitespace: normalise to delete it)"
            )
        bad = _bad(value)
        if bad:
            what = (
                "more than 4 consecutive spaces" if bad.group(0)[0] == " " else "a newline or tab"
            )
            raise WhatsAppRuleError(
                f"contains {what} (WhatsApp refuses it; use whitespace: normalise)"
            )
    if not value.strip():
        raise WhatsAppRuleError("is empty (WhatsApp refuses empty parameters)")
    return value


def control_character(value: str) -> str | None:
    """The first control character of ``value`` that is neither a line break nor a tab, as
    ``U+0000``; None when there is none."""
    if value.isprintable():
        return None
    found = _CONTROLS.search(value)
    return None if found is None else f"U+{ord(found.group(0)):04X}"


def _bad(value: str) -> re.Match[str] | None:
    """Where ``value`` breaks the rule; every break character is unprintable, so printable text
    without a run of spaces needs no regular expression (most parameters)."""
    if value.isprintable() and _TOO_MANY_SPACES not in value:
        return None
    return _BAD.search(value)


def _join_bad_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return " " if _BAD.search(run) else run


def fill(text: str, params: Sequence[str]) -> str:
    """The approved body with ``<<n>>`` replaced by ``params[n-1]``."""
    layout, order, in_order = _layout(text)
    if in_order and len(params) == len(order):
        return layout % tuple(params)
    return layout % tuple([params[i] for i in order])


@lru_cache(maxsize=1024)
def _layout(text: str) -> tuple[str, tuple[int, ...], bool]:
    """``"Hi <<1>>, 100%"`` → ``("Hi %s, 100%%", (0,), True)``: a %-format, the index of the
    parameter for each ``%s``, and whether those are simply 0, 1, 2…"""
    pieces = VARIABLE.split(text)
    order = tuple(int(n) - 1 for n in pieces[1::2])
    layout = "%s".join(p.replace("%", "%%") for p in pieces[::2])
    return layout, order, order == tuple(range(len(order)))


def check_body(filled: str) -> None:
    """Raise WhatsAppRuleError when the filled body is longer than WhatsApp accepts."""
    if len(filled) > MAX_BODY:
        raise WhatsAppRuleError(
            f"the filled text is {len(filled)} characters; WhatsApp accepts at most {MAX_BODY}"
        )


def breaks_rule(value: str) -> bool:
    """True when ``value`` has a line break, a tab or more than 4 spaces in a row (what
    ``reject`` refuses and ``normalise`` repairs)."""
    return _bad(value) is not None
