"""Delivery acks from 1MSG: its payloads read into :class:`Ack` values, and its webhook route.

1MSG posts its normalised shape ``{"instanceId": …, "ack": [{id, status, error…}],
"messages": […]}``; with ``rawHooks`` on, and in ``hookInfo`` answers, statuses come in Meta's
shape (``entry[].changes[].value.statuses[]`` / ``hooks[]``, errors as objects). Both become
:class:`Ack` values here, a ``failed`` one with its failure class already read
(:func:`onemsg.classify.classify_failed_ack`), so the webhook and the status lookup feed the
engine the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nextstep.adapters.channels.onemsg.classify import classify_failed_ack
from nextstep.engine.model import Ack, OutcomeKind


@dataclass(frozen=True, slots=True)
class Payload:
    """What one webhook call carried: its acks, how many inbound messages, how many bad acks."""

    acks: list[Ack]
    messages: int = 0
    rejected: int = 0


def failure_of(status: str, error: str, code: int | None) -> OutcomeKind | None:
    """The class of a ``failed`` ack (None for any other status): a code (Meta's raw format)
    is the most specific evidence, so it is read as ``(#code)`` with the text."""
    if status != "failed":
        return None
    coded = error if code is None or str(code) in error else f"{error} (#{code})".strip()
    return classify_failed_ack(coded)


def _error_of(value: Any) -> tuple[str, int | None]:
    """The text and code of an ack's ``error``: 1MSG sends text, Meta sends objects."""
    if value is None:
        return "", None
    if isinstance(value, str):
        return value, None
    if isinstance(value, list):
        return _error_of(value[0]) if value else ("", None)
    if isinstance(value, Mapping):
        data = value.get("error_data")
        details = data.get("details") if isinstance(data, Mapping) else None
        text = details or value.get("message") or value.get("title") or ""
        code = value.get("code")
        return str(text), code if isinstance(code, int) and not isinstance(code, bool) else None
    return str(value), None


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


def _meta_statuses(doc: Mapping[str, Any]) -> Iterable[Any]:
    """The ``statuses`` of a raw Meta envelope (``rawHooks``)."""
    for entry in doc.get("entry") or ():
        for change in (entry.get("changes") or ()) if isinstance(entry, Mapping) else ():
            value = change.get("value") if isinstance(change, Mapping) else None
            if isinstance(value, Mapping):
                yield from value.get("statuses") or ()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_payload(doc: Any) -> Payload | None:
    """Read one webhook body (already JSON-decoded); None when it is not a 1MSG payload."""
    if not isinstance(doc, Mapping):
        return None
    items = _as_list(doc.get("ack")) + list(_meta_statuses(doc))
    acks = [ack for ack in (ack_from(item) for item in items) if ack is not None]
    messages = len(_as_list(doc.get("messages")))
    return Payload(acks, messages, len(items) - len(acks))


def acks_from_hook_info(answer: Any, message_id: str) -> list[Ack]:
    """The acks in a ``GET hookInfo?messageId=`` answer (``{"hooks": [Meta statuses]}``).

    Every hook is about the message asked for, whatever id it carries (Meta's own id may
    differ from the one 1MSG returned at send time), so each ack gets ``message_id``.
    """
    hooks = answer.get("hooks") if isinstance(answer, Mapping) else answer
    acks: list[Ack] = []
    for hook in _as_list(hooks):
        if isinstance(hook, Mapping):
            ack = ack_from({**hook, "id": message_id}, source="poll")
            if ack is not None:
                acks.append(ack)
    return acks
