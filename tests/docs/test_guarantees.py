"""docs/guarantees.md cannot rot: every test it names exists, every guarantee names some, and a
test that is known to fail (``xfail``: a defect not fixed yet) is cited only where the page
says the promise is not yet proven."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guarantees.md"
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
PATH = re.compile(r"\b(tests/[\w/.-]+\.(?:py|md|yaml))\b")


def _text() -> str:
    return PAGE.read_text(encoding="utf-8")


def _sections() -> list[tuple[str, str]]:
    """``(title, body)`` of every ``##`` section."""
    parts = re.split(r"^## (.+)$", _text(), flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def _decorators(path: str, name: str) -> str:
    """The decorator lines right above ``def name(`` in ``path`` ("" when it has none)."""
    source = (ROOT / path).read_text(encoding="utf-8")
    found = re.search(rf"^(?:async )?def {name}\(", source, re.M)
    assert found, f"{path}::{name} is cited by guarantees.md but does not exist"
    block: list[str] = []
    for line in reversed(source[: found.start()].split("\n")[:-1]):
        if not line.strip():
            break
        block.insert(0, line)
    return "\n".join(block) if block and block[0].startswith("@") else ""


def test_every_cited_test_exists() -> None:
    cited = CITED.findall(_text())
    assert len(cited) >= 20
    for path, name in cited:
        assert (ROOT / path).is_file(), f"guarantees.md cites {path}, which does not exist"
        _decorators(path, name)


def test_every_named_file_exists() -> None:
    for path in PATH.findall(_text()):
        assert (ROOT / path).is_file(), f"guarantees.md names {path}, which does not exist"


def test_every_guarantee_cites_a_test() -> None:
    for title, body in _sections():
        assert CITED.search(body), f"guarantees.md: '{title}' cites no test"


def test_a_known_failure_is_cited_only_as_not_yet_proven() -> None:
    for title, body in _sections():
        proven = re.split(r"^Not yet proven", body, maxsplit=1, flags=re.M)[0]
        for path, name in CITED.findall(proven):
            marks = _decorators(path, name)
            assert "xfail" not in marks, (
                f"guarantees.md '{title}' cites {path}::{name} as proof, but it is marked "
                "xfail: move it under 'Not yet proven' (or drop the mark once it passes)"
            )
