"""The one error tree of nextstep.

::

    NextstepError
    ├── ConfigError        a list of located problems (file, line, column, rule, path, message)
    ├── RenderError        a template or expression failed for one event (rule, field, reason)
    ├── DeliveryError      a channel could not deliver (carries the classified Outcome)
    ├── StoreError         the ledger could not be read or written
    └── UsageError         the command line was used wrongly (exit code 2)

Foreign exceptions (yaml, jinja2, sqlite3, httpx…) are mapped into this tree at the boundary
where they occur; none of them reaches a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nextstep.engine.model import Outcome


class NextstepError(Exception):
    """Root of every error nextstep raises on purpose."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One located configuration problem, printed as ``FILE:LINE:COL: rule ID: path: message``."""

    file: str
    line: int
    col: int
    rule_id: str | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        parts = [where]
        if self.rule_id:
            parts.append(f"rule {self.rule_id}")
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(NextstepError):
    """The configuration or a rule file is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RenderError(NextstepError):
    """Rendering a rule's template or expression failed for one event."""

    def __init__(self, rule_id: str, field: str, reason: str) -> None:
        self.rule_id = rule_id
        self.field = field
        self.reason = reason
        super().__init__(f"rule {rule_id}: {field}: {reason}")


class DeliveryError(NextstepError):
    """A channel could not deliver a message; ``outcome`` says how it failed."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        super().__init__(f"{outcome.kind}: {outcome.reason}")


class StoreError(NextstepError):
    """The ledger could not be opened, migrated, read or written."""


class ProgressClaimed(StoreError):
    """A progress key written with ``claim`` was already there (another request, maybe on
    another worker, claimed it first): nothing of that write was kept."""

    def __init__(self, key: str) -> None:
        super().__init__(f"progress key {key!r} is already claimed")
        self.key = key


class UsageError(NextstepError):
    """The command line was used wrongly (exit code 2)."""
