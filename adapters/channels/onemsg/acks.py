"""Delivery acks from 1MSG: its payloads read into :class:`Ack` values, and its webhook route.

1MSG posts its normalised shape ``{"instanceId": …, "ack": [{id, status, error…}],
"messages": […]}``; with ``rawHooks`` on, and in ``hookInfo`` answers, statuses come in Meta's
shape (``entry[].changes[].value.statuses[]`` / ``hooks[]``, errors as objects). Both become
:class:`Ack` values here, a ``failed`` one with its failure class already read
(:func:`onemsg.classify.classify_failed_ack`), so the webhook and the status lookup feed the
engine the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nextstep.adapters.channels.onemsg.classify import classify_failed_ack
from nextstep.engine.model import Ack, OutcomeKind

MAX_ERROR_TEXT = 1000
"""Characters of a failed ack's error text kept (and classified): a webhook body may be up to
``server.max_body`` bytes, and the text classifier's patterns are meant for short messages."""

PARTS = ("ack", "messages", "entry", "changes", "value", "statuses", "status")
"""The parts of a webhook body that can be ignored when malformed, as counted: ``ack`` (the
``ack`` key or one of its items), ``messages``, ``entry`` (the key or one entry), ``changes``
(the key or one change), ``value``, ``statuses`` (the key) and ``status`` (one status item)."""


@dataclass(frozen=True, slots=True)
class Payload:
    """What one webhook call carried: its acks, how many inbound messages, and how many parts
    of each kind were malformed and ignored (:data:`PARTS`)."""

    acks: list[Ack]
    messages: int = 0
    ignored: Mapping[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        """Ack and status items that were not acks (no id, no status, not an object)."""
        return self.ignored.get("ack", 0) + self.ignored.get("status", 0)

    @property
    def ignored_total(self) -> int:
        """Every malformed part that was ignored."""
        return sum(self.ignored.values())


def failure_of(status: str, error: str, code: int | None) -> OutcomeKind | None:
    """The class of a ``failed`` ack (None for any other status): a code (Meta's raw format)
    is the most specific evidence, so it is read as ``(#code)`` with the text."""
    if status != "failed":
        return None
    coded = error if code is None or str(code) in error else f"{error} (#{code})".strip()
    return classify_failed_ack(coded)


def _error_of(value: Any) -> tuple[str, int | None]:
    """The text and code of an ack's ``error``: 1MSG sends text, Meta sends objects (or a list
    of them; the first counts). Any other shape gives no text rather than an exception, and
    nesting is followed by a loop, never by recursion (a body may nest 1000 lists deep)."""
    while isinstance(value, list):
        if not value:
            return "", None
        value = value[0]
    if isinstance(value, str):
        return value[:MAX_ERROR_TEXT], None
    if isinstance(value, Mapping):
        data = value.get("error_data")
        details = data.get("details") if isinstance(data, Mapping) else None
        texts = (details, value.get("message"), value.get("title"))
        text = next((t for t in texts if isinstance(t, str) and t), "")
        code = value.get("code")
        valid = isinstance(code, int) and not isinstance(code, bool)
        return text[:MAX_ERROR_TEXT], code if valid else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value), None
    return "", None


def ack_from(item: Any, *, source: str = "webhook") -> Ack | None:
    """An :class:`Ack` from one 1MSG ack or one Meta status object; None when it is not one."""
    if not isinstance(item, Mapping):
        return None
    provider_id, status = item.get("id"), item.get("status")
    if not isinstance(provider_id, str) or not provider_id or not isinstance(status, str):
        return None
    error, code = _error_of(item.get("error", item.get("errors")))
    status = status.strip().lower()
    return Ack(provider_id, status, error, code, source, failure_of(status, error, code))


class _Reader:
    """Walks one webhook body, taking what is well formed and counting what is not."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []  # (part, candidate ack)
        self.ignored: dict[str, int] = {}

    def skip(self, part: str) -> None:
        self.ignored[part] = self.ignored.get(part, 0) + 1

    def listed(self, value: Any, part: str) -> list[Any]:
        """``value`` as a list: a list as is, one object as a list of one, nothing for null;
        any other type is a malformed ``part`` (counted, and read as empty)."""
        if value is None:
            return []
        if isinstance(value, list):
            return value
        if isinstance(value, Mapping):
            return [value]
        self.skip(part)
        return []

    def meta_statuses(self, doc: Mapping[str, Any]) -> None:
        """The ``statuses`` of a raw Meta envelope (``rawHooks``):
        ``entry[].changes[].value.statuses[]``."""
        for entry in self.listed(doc.get("entry"), "entry"):
            if not isinstance(entry, Mapping):
                self.skip("entry")
                continue
            for change in self.listed(entry.get("changes"), "changes"):
                if not isinstance(change, Mapping):
                    self.skip("changes")
                    continue
                value = change.get("value")
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    self.skip("value")
                    continue
                for status in self.listed(value.get("statuses"), "statuses"):
                    self.items.append(("status", status))


def parse_payload(doc: Any) -> Payload | None:
    """Read one webhook body (already JSON-decoded); None when it is not a JSON object.

    A malformed part — a key of the wrong type, an item that is not an ack — is ignored and
    counted in :attr:`Payload.ignored`; everything else is taken. Never raises for any JSON
    value.
    """
    if not isinstance(doc, Mapping):
        return None
    reader = _Reader()
    reader.items.extend(("ack", item) for item in reader.listed(doc.get("ack"), "ack"))
    reader.meta_statuses(doc)
    acks = []
    for part, item in reader.items:
        ack = ack_from(item)
        if ack is None:
            reader.skip(part)
        else:
            acks.append(ack)
    messages = len(reader.listed(doc.get("messages"), "messages"))
    return Payload(acks, messages, reader.ignored)


def acks_from_hook_info(answer: Any, message_id: str) -> list[Ack]:
    """The acks in a ``GET hookInfo?messageId=`` answer (``{"hooks": [Meta statuses]}``).

    Every hook is about the message asked for, whatever id it carries (Meta's own id may
    differ from the one 1MSG returned at send time), so each ack gets ``message_id``.
    """
    hooks = answer.get("hooks") if isinstance(answer, Mapping) else answer
    acks: list[Ack] = []
    for hook in hooks if isinstance(hooks, list) else [hooks]:
        if isinstance(hook, Mapping):
            ack = ack_from({**hook, "id": message_id}, source="poll")
            if ack is not None:
                acks.append(ack)
    return acks
