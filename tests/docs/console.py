"""Running the docs' console sessions: ```` ```console ```` blocks marked ``<!-- run -->``.

In a session, ``$ `` starts a command and the lines up to the next ``$ `` are what it prints
(standard output and error, as a terminal shows them; trailing spaces ignored). ``<...>`` in a
shown line stands for text that differs on every run (a message id, a duration). Commands:

* ``nextstep ARGS…`` (optionally ``< FILE``), run in-process with click's CliRunner;
* ``echo 'TEXT' | nextstep ARGS…``: TEXT is the command's standard input;
* ``echo $?``: shows the previous command's exit code. A ``nextstep`` command not followed by
  one must exit 0.

A session runs in a fresh folder holding a copy of the repository's ``nextstep.yaml`` and
``rules/``, plus the document's named examples listed in ``files=a,b``. With ``sandbox`` a
1MSG sandbox runs on loopback and ``ONEMSG_BASE_URL`` points at it (the sessions are written
for ``nextstep sandbox`` on its default port). Blocks with the same ``session=NAME`` in one
document share the folder, the ledger and the sandbox, in order.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from nextstep.engine.commands.cli import main
from tests.docs.markdown import ROOT, Block, blocks, documents, named_files

WILDCARD = "<...>"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
# Environment that changes what commands print: cleared, so the outer shell cannot leak in.
_OUTPUT_ENV = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM")
_COMMAND_ENV = ("NEXTSTEP_CONFIG", "NEXTSTEP_LOG_FORMAT", "NEXTSTEP_LOG_LEVEL")


@dataclass(frozen=True, slots=True)
class Step:
    """One ``$`` command of a session and the output shown under it."""

    block: Block
    line: int
    command: str
    shown: tuple[str, ...]

    @property
    def where(self) -> str:
        """``docs/operations.md:88``."""
        return f"{self.block.doc.relative_to(ROOT)}:{self.line}"


@dataclass
class Session:
    """Console blocks that run in one folder, one after the other."""

    key: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def sandbox(self) -> bool:
        """True when any of its blocks asks for the 1MSG sandbox."""
        return any(b.marker is not None and "sandbox" in b.marker.flags for b in self.blocks)

    @property
    def files(self) -> list[str]:
        """The named examples its blocks list in ``files=``."""
        names: list[str] = []
        for block in self.blocks:
            listed = block.marker.args.get("files", "") if block.marker else ""
            names += [n for n in listed.split(",") if n and n not in names]
        return names

    def steps(self) -> list[Step]:
        """Every command of every block, in order."""
        return [step for block in self.blocks for step in parse_steps(block)]


def sessions() -> list[Session]:
    """Every ``run`` session of README.md and docs/, grouped by ``session=``."""
    found: dict[str, Session] = {}
    for doc in documents():
        for block in blocks(doc):
            if block.marker is None or block.marker.name != "run":
                continue
            name = block.marker.args.get("session")
            key = f"{block.where}" if name is None else f"{doc.name}:{name}"
            found.setdefault(key, Session(key)).blocks.append(block)
    return list(found.values())


def parse_steps(block: Block) -> list[Step]:
    """The commands of a console block with the lines shown under each."""
    steps: list[Step] = []
    command: list[str] = []
    shown: list[str] = []
    start = 0
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            if command:
                steps.append(Step(block, start, " ".join(command), tuple(shown)))
            start, command, shown = block.line + 1 + i, [line[2:].rstrip(" \\")], []
            while lines[i].endswith("\\") and i + 1 < len(lines):
                i += 1
                command.append(lines[i].strip().rstrip(" \\"))
        else:
            shown.append(line)
        i += 1
    if command:
        steps.append(Step(block, start, " ".join(command), tuple(shown)))
    return steps


def workspace(root: Path, session: Session) -> Path:
    """A folder with the repository's example config, rules and the session's named files."""
    shutil.copy(ROOT / "nextstep.yaml", root / "nextstep.yaml")
    shutil.copytree(ROOT / "rules", root / "rules")
    doc = session.blocks[0].doc
    examples = named_files(doc)
    for name in session.files:
        assert name in examples, f"{session.key}: files= names {name!r}, not an example of {doc}"
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(examples[name].text, encoding="utf-8")
    return root


def environment(onemsg_base_url: str | None) -> dict[str, str | None]:
    """What commands see: the example config's variables unset (their demo defaults apply),
    a fixed terminal width, no colour."""
    config = (ROOT / "nextstep.yaml").read_text(encoding="utf-8")
    env: dict[str, str | None] = {name: None for name in _VARIABLE.findall(config)}
    env.update({name: None for name in (*_OUTPUT_ENV, *_COMMAND_ENV)})
    env["COLUMNS"] = "80"
    if onemsg_base_url is not None:
        env["ONEMSG_BASE_URL"] = onemsg_base_url
    return env


def arguments(step: Step) -> tuple[list[str], str | None]:
    """The nextstep arguments of a command and its standard input."""
    command, stdin = step.command, None
    if command.startswith("echo ") and " | " in command:
        echoed, _, command = command.partition(" | ")
        stdin = " ".join(shlex.split(echoed)[1:]) + "\n"
    words = shlex.split(command)
    if "<" in words:
        at = words.index("<")
        stdin = Path(words[at + 1]).read_text(encoding="utf-8")
        words = words[:at] + words[at + 2 :]
    assert words and words[0] == "nextstep", f"{step.where}: only nextstep commands run: {command}"
    return words[1:], stdin


def invoke(step: Step, env: dict[str, str | None]) -> Result:
    """Run one nextstep command in-process (blocking: call it from a worker thread)."""
    args, stdin = arguments(step)
    result = CliRunner().invoke(main, args, input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{step.where}: `{step.command}` raised") from result.exception
    return result


def _pattern(shown: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in shown.rstrip().split(WILDCARD)]
    return re.compile(".*".join(parts) + r"\Z")


def difference(shown: tuple[str, ...], printed: str) -> str | None:
    """None when ``printed`` is what the doc shows, else where they first differ."""
    want = list(shown)
    got = [line.rstrip() for line in printed.splitlines()]
    while want and not want[-1].strip():
        want.pop()
    while got and not got[-1]:
        got.pop()
    for n, (a, b) in enumerate(zip(want, got, strict=False), start=1):
        if not _pattern(a).match(b):
            return f"line {n}: the doc shows\n  {a!r}\nthe command printed\n  {b!r}"
    if len(want) != len(got):
        return f"the doc shows {len(want)} lines, the command printed {len(got)}:\n" + "\n".join(
            got
        )
    return None
