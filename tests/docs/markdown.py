"""Reading the docs' fenced blocks and the HTML-comment markers that say what each one is.

A marker is the HTML comment on the last non-blank line before a fence::

    <!-- example: rules -->            a complete rule file, loaded and its examples run
    <!-- example: rules file=rules/late.yaml invalid -->
    <!-- run: sandbox files=event.json session=ops -->

``example:`` takes a kind (``config``, ``rules``, ``event``, ``scenario``, ``healthz``), an
optional ``file=PATH`` (the name console sessions use for it) and the flags ``invalid`` (it
must fail validation) or ``failing`` (it loads, and one of its examples fails). ``run`` marks a
console session (see :mod:`tests.docs.console`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OWNED = ("rules.md", "operations.md", "guarantees.md")  # every example in these is marked

_FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
_COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass(frozen=True, slots=True)
class Marker:
    """``<!-- name: words -->``: the name, its ``key=value`` arguments and its bare flags."""

    name: str
    args: dict[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced block: where it starts, its language, its text and its marker (if any)."""

    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: Marker | None

    @property
    def where(self) -> str:
        """``docs/rules.md:42``: for test ids and messages."""
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def parse_marker(comment: str) -> Marker | None:
    """The marker of an HTML comment line, or None when it is not one."""
    match = _COMMENT.match(comment.strip())
    if match is None:
        return None
    name, _, rest = match.group(1).partition(":")
    args: dict[str, str] = {}
    flags: set[str] = set()
    words: list[str] = []
    for word in rest.split():
        key, eq, value = word.partition("=")
        if eq:
            args[key] = value
        else:
            flags.add(word)
            words.append(word)
    return Marker(name.strip(), args, frozenset(flags), tuple(words))


def blocks(doc: Path) -> list[Block]:
    """Every fenced block of ``doc`` in order, with the marker just before it."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, lang = opening.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), len(lines))
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        text = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(doc, i + 1, lang, text, parse_marker(previous)))
        i = end + 1
    return found


def documents() -> list[Path]:
    """README.md and every page of docs/."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def marked(name: str) -> list[Block]:
    """Every block of every document whose marker is ``name``."""
    return [
        block
        for doc in documents()
        for block in blocks(doc)
        if block.marker is not None and block.marker.name == name
    ]


def named_files(doc: Path) -> dict[str, Block]:
    """The ``example:`` blocks of ``doc`` that give a ``file=`` name, by that name."""
    return {
        b.marker.args["file"]: b
        for b in blocks(doc)
        if b.marker is not None and b.marker.name == "example" and "file" in b.marker.args
    }
