"""The list's export: comma-separated values, one notification a line, recipients masked.

Cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) get a
leading ``'``; every cell is quoted.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from nextstep.engine.ledger.base import Notification
from nextstep.engine.runtime.console.masking import Masker

# The file format of the export (not a trigger): its media type, file name and link label.
CONTENT_TYPE, FILE_NAME, LABEL = "text/csv; charset=utf-8", "notifications.csv", "CSV"
HEADER = (
    "id",
    "created_at",
    "rule",
    "rule_version",
    "channel",
    "recipient",
    "state",
    "attempts",
    "dedupe_key",
    "provider_id",
    "parent_id",
    "fallback_step",
    "failure_class",
    "reason",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """One quoted cell."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA):
        text = "'" + text
    return '"' + text.replace('"', '""') + '"'


def row(values: Sequence[object]) -> str:
    """One line of the file."""
    return ",".join(cell(v) for v in values) + "\r\n"


def values(n: Notification, masker: Masker) -> tuple[object, ...]:
    """A notification's cells, in HEADER's order."""
    created = datetime.datetime.fromtimestamp(n.created_at, datetime.UTC).isoformat()
    return (
        n.id,
        created,
        n.rule_id,
        n.rule_version,
        n.channel,
        masker.phone(n.recipient),
        n.state.value,
        n.attempts,
        n.dedupe_key,
        n.provider_id,
        n.parent_id,
        n.fallback_step,
        n.failure_class,
        masker.text(n.reason, n.recipient),
    )
