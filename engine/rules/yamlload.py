"""Reading YAML the way nextstep needs it: plain JSON-like values plus where each one was written.

PyYAML's composer gives nodes with marks; we walk them ourselves so that

* every value's position is kept in a map keyed by its path (``("rules", 0, "send", "text")``),
  which is how a problem found later (schema, Jinja, duplicate id) is reported at its line;
* a key written twice in one mapping is a problem, never a silent overwrite;
* ``${VAR}`` / ``${VAR:-default}`` is replaced from the environment inside scalars, and a missing
  variable is a problem at the scalar's line;
* the result is JSON-compatible (mapping keys become strings, dates ISO strings), so the same
  data is validated by the JSON Schema, hashed into a rule version and stored in the ledger;
* hostile input is bounded before it costs anything: a file over :data:`MAX_FILE_BYTES` is not
  read, nesting deeper than :data:`MAX_DEPTH` and aliases that expand past :data:`MAX_NODES`
  values ("billion laughs") stop the composer, each a problem at its line.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nextstep.engine.errors import Problem

PathKey = tuple[str | int, ...]

MAX_FILE_BYTES = 1_000_000  # a rule file or nextstep.yaml; larger is refused unread
MAX_DEPTH = 64  # nested mappings and lists (rule files need about 12)
MAX_NODES = 100_000  # values once every alias is expanded (the repository's rules: ~1,000)

_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float"))


class _Bounded(yaml.MarkedYAMLError):
    """The document is too deep or expands too much; ``problem_mark`` is where."""


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: only true/false are booleans (``on:``, ``NO`` and ``yes`` stay text),
    no sexagesimal 10:30, and a number with a leading zero (0034…, 08001) stays text.

    Composing counts: the depth of nesting, and each node's size once aliases are expanded
    (its own node plus its children's sizes, an alias weighing what its anchor weighs), so an
    alias bomb stops after a few hundred nodes instead of being expanded by the walker.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its size with aliases expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # noqa: D102
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            alias: Node = super().compose_node(parent, index)  # type: ignore[assignment]
            if id(alias) not in self._sizes:
                raise _Bounded(None, None, "an alias refers to its own anchor (a loop)", mark)
            return alias
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Bounded(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        node: Node = super().compose_node(parent, index)  # type: ignore[assignment]
        self._depth -= 1
        size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_NODES:
            raise _Bounded(
                None,
                None,
                f"expands to more than {MAX_NODES:,} values (aliases repeat what they name)",
                node.start_mark,
            )
        self._sizes[id(node)] = size
        return node

    def construct_int(self, node: ScalarNode) -> int:
        """Decimal, 0x hex or 0o octal (YAML 1.1's 0-prefixed octal never reaches here)."""
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits.startswith(("0x", "0o")):
            return sign * int(digits[2:], 16 if digits[1] == "x" else 8)
        return sign * int(digits)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:0|[1-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?(?:0|[1-9][0-9_]*)[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Loader.add_constructor(_INT, _Loader.construct_int)

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column in a file."""

    line: int
    col: int


@dataclass(slots=True)
class Positions:
    """Where each value (and each mapping key) of a loaded document was written."""

    values: dict[PathKey, Mark] = field(default_factory=dict)
    keys: dict[PathKey, Mark] = field(default_factory=dict)

    def of(self, path: PathKey) -> Mark:
        """The position of the value at ``path``, else of its nearest written ancestor."""
        probe = tuple(path)
        while probe:
            mark = self.values.get(probe)
            if mark is not None:
                return mark
            probe = probe[:-1]
        return self.values.get((), Mark(1, 1))

    def key(self, path: PathKey) -> Mark:
        """The position of the key that introduces ``path`` (falls back to the value's)."""
        return self.keys.get(tuple(path)) or self.of(path)


@dataclass(slots=True)
class Loaded:
    """A YAML file read into plain values, their positions and the problems met on the way."""

    file: str
    data: Any
    positions: Positions
    problems: list[Problem]
    problem_paths: list[PathKey] = field(default_factory=list)  # where each problem is


def format_path(path: PathKey) -> str:
    """``("send", "params", "3")`` → ``send.params.3``; list indices as ``[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace ``${VAR}`` and ``${VAR:-default}`` from ``env`` (``$$`` writes one ``$``).

    Returns the new text and the names of the variables that were not set and had no default.
    """
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append(name)
                return ""
            return default
        return value

    return _VAR.sub(replace, text), missing


class _Walker:
    """Turns a composed node tree into plain values, recording positions and problems."""

    def __init__(self, file: str, env: Mapping[str, str] | None) -> None:
        self.file = file
        self.env = env
        self.positions = Positions()
        self.problems: list[Problem] = []
        self.problem_paths: list[PathKey] = []
        self._loader = _Loader("")

    def problem(self, mark: Mark, path: PathKey, message: str) -> None:
        self.problems.append(
            Problem(self.file, mark.line, mark.col, None, format_path(path), message)
        )
        self.problem_paths.append(path)

    def value(self, node: Node, path: PathKey) -> Any:
        mark = _mark(node)
        self.positions.values.setdefault(path, mark)
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self.scalar(node, path)

    def mapping(self, node: MappingNode, path: PathKey) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self.merge_sources(value_node, path))
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(_mark(key_node), path, "a mapping key must be a plain value")
                continue
            key = _key_text(self.construct(key_node, path))
            child = (*path, key)
            if key in out:
                first = self.positions.keys[child]
                self.problem(
                    _mark(key_node),
                    child,
                    f"duplicate key '{key}' (first written at line {first.line})",
                )
                continue
            self.positions.keys[child] = _mark(key_node)
            out[key] = self.value(value_node, child)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def merge_sources(self, node: Node, path: PathKey) -> dict[str, Any]:
        """The mappings of a ``<<: *anchor`` merge key, earlier ones winning."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(_mark(source), path, "'<<' merges only mappings")
                continue
            walker = _Walker(self.file, self.env)
            for key, value in walker.mapping(source, ()).items():
                merged.setdefault(key, value)
            self.problems.extend(walker.problems)
            self.problem_paths.extend((*path, *p) for p in walker.problem_paths)
        return merged

    def scalar(self, node: ScalarNode, path: PathKey) -> Any:
        value = self.construct(node, path)
        if isinstance(value, str) and "$" in value and self.env is not None:
            text, missing = interpolate(value, self.env)
            for name in missing:
                self.problem(
                    _mark(node),
                    path,
                    f"environment variable {name} is not set "
                    f"(set it, or write ${{{name}:-default}} for a default)",
                )
            if missing:
                return value  # as written: the one problem is the variable, not its shape
            if node.style is None and text != value:
                # An unquoted `port: ${MAIL_PORT:-25}` means a number, as if written inline.
                tag = self._loader.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
                return _plain(self.construct(ScalarNode(tag, text), path))
            return text
        return _plain(value)

    def construct(self, node: ScalarNode, path: PathKey) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            self.problem(_mark(node), path, f"cannot read value {node.value!r}: {exc}")
            return node.value


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _plain(value: Any) -> Any:
    """YAML-only types as JSON ones: dates and datetimes as ISO strings, bytes as text."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


_BLOCK_ERRORS = ("mapping values are not allowed here", "expected <block end>")


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError, text: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = f"YAML syntax error: {exc.problem or exc}"
    if exc.context and exc.context_mark:
        message += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
    if str(exc.problem or "").startswith(_BLOCK_ERRORS):
        lines = text.splitlines()
        wrong, other = _misindented(lines, line)
        if wrong != line:
            message += f"; check the indentation of this line (YAML noticed at line {line})"
            return Problem(file, wrong, _indent(lines, wrong) + 1, None, "", message)
        if other is not None:
            message += f"; check the indentation of this line (or of line {other} above it)"
            return Problem(file, line, col, None, "", message)
    if "block" in message or "indent" in message:
        message += "; check the indentation"
    return Problem(file, line, col, None, "", message)


def _indent(lines: list[str], number: int) -> int:
    text = lines[number - 1]
    return len(text) - len(text.lstrip(" "))


def _misindented(lines: list[str], line: int) -> tuple[int, int | None]:
    """(the line most likely indented wrong, the other candidate) when YAML stops at ``line``
    (1-based) on an indentation mistake.

    YAML notices a badly indented line only at the next one, so the line before (P) is a
    candidate too. P is the one when the line before it opens a block (``send:``) that P is
    not indented under, or when the lines after ``line`` agree with ``line``'s indentation
    (``- id:`` one space too deep, the next keys right).
    """

    def content(number: int) -> bool:
        stripped = lines[number - 1].strip()
        return bool(stripped) and not stripped.startswith("#")

    def opens(number: int) -> bool:
        code = lines[number - 1].split(" #")[0].rstrip()
        return code.endswith((":", "|", ">", "|-", ">-", "|+", ">+"))

    if not 1 <= line <= len(lines) or not content(line):
        return line, None
    before = next((n for n in range(line - 1, 0, -1) if content(n)), None)
    if before is None:
        return line, None
    above = next((n for n in range(before - 1, 0, -1) if content(n)), None)
    if above is not None and opens(above) and _indent(lines, before) <= _indent(lines, above):
        return before, line
    if opens(line):
        return line, before
    after = next((n for n in range(line + 1, len(lines) + 1) if content(n)), None)
    if after is None or _indent(lines, after) != _indent(lines, line):
        return line, before
    return before, line


def load_text(text: str, file: str, env: Mapping[str, str] | None) -> Loaded:
    """Parse one YAML document from ``text`` (named ``file`` in problems); ``env=None`` leaves
    ``${…}`` as written (data, not configuration)."""
    walker = _Walker(file, env)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except _Bounded as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML refused: {exc.problem}"
        return Loaded(file, None, walker.positions, [Problem(file, line, col, None, "", message)])
    except yaml.MarkedYAMLError as exc:
        return Loaded(file, None, walker.positions, [_syntax_problem(file, exc, text)])
    except yaml.YAMLError as exc:
        return Loaded(file, None, walker.positions, [Problem(file, 1, 1, None, "", str(exc))])
    if node is None:
        return Loaded(file, None, walker.positions, [])
    data = walker.value(node, ())
    return Loaded(file, data, walker.positions, walker.problems, walker.problem_paths)


def load_file(path: Path, env: Mapping[str, str], *, display: str | None = None) -> Loaded:
    """Read and parse ``path``; an unreadable file is a problem, not an exception."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = f"{size:,} bytes is too large (at most {MAX_FILE_BYTES:,}): not read"
            return Loaded(name, None, Positions(), [Problem(name, 1, 1, None, "", message)])
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Loaded(
            name, None, Positions(), [Problem(name, 1, 1, None, "", f"cannot read: {reason}")]
        )
    return load_text(text, name, env)
