"""Delivery acks: read them from 1MSG payloads, and apply a batch of them to the ledger.

1MSG posts its normalised shape ``{"instanceId": …, "ack": [{id, status, error…}],
"messages": […]}``; with ``rawHooks`` on, and in ``hookInfo`` answers, statuses come in Meta's
shape (``entry[].changes[].value.statuses[]`` / ``hooks[]``, errors as objects). Both become
:class:`Ack` values here, so the webhook and the poller feed the same ledger function.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nextstep.engine.delivery import statemachine
from nextstep.engine.delivery.fallbacks import PolicyContext, failed_ack
from nextstep.engine.delivery.statemachine import ACK_STATUSES
from nextstep.engine.ledger import sqlite_status as sql
from nextstep.engine.ledger.sqlite import SqliteStore
from nextstep.engine.ledger.sqlite_rows import add_history
from nextstep.engine.metrics import ACKS, NOTIFICATIONS
from nextstep.engine.model import State

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ack:
    """One status report about one provider message id."""

    provider_id: str
    status: str
    error: str = ""
    code: int | None = None
    source: str = "webhook"  # webhook | poll

    def detail(self) -> dict[str, Any]:
        """How the ack is kept in a notification's history."""
        doc: dict[str, Any] = {"status": self.status, "source": self.source}
        if self.error:
            doc["error"] = self.error
        if self.code is not None:
            doc["code"] = self.code
        return doc


@dataclass(frozen=True, slots=True)
class Payload:
    """What one webhook call carried: its acks, how many inbound messages, how many bad acks."""

    acks: list[Ack]
    messages: int = 0
    rejected: int = 0


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
    return Ack(provider_id, status.strip().lower(), error, code, source)


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


# -- applying acks to the ledger -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AckReport:
    """What one batch of acks did: matched a notification, moved its state, or was kept."""

    matched: int = 0
    moved: int = 0
    kept: int = 0


def _metric_status(status: str) -> str:
    return status if status in ACK_STATUSES else "other"


class _Batch:
    """Accumulates one batch's state moves and history lines, written in order."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn, self.now = conn, now
        self.moves: list[tuple[int, State, State]] = []
        self.history: list[tuple[int, float, str, Mapping[str, Any]]] = []

    def flush(self) -> None:
        sql.set_states(self.conn, self.moves, self.now)
        add_history(self.conn, self.history)
        self.moves, self.history = [], []


def apply_acks(
    conn: sqlite3.Connection,
    acks: Sequence[Ack],
    now: float,
    ctx: PolicyContext,
    *,
    keep_unknown: bool = True,
    late: bool = False,
) -> AckReport:
    """Apply ``acks`` in order inside the open transaction ``conn``.

    Each ack of a known message becomes a history line; the state moves only as
    :func:`delivery.statemachine.apply` allows. A ``failed`` ack ends the notification through
    :func:`delivery.fallbacks.failed_ack` (retry, or failed plus fallback) in this transaction.
    Acks for unknown ids are kept (``keep_unknown``) and applied once the send is recorded.
    """
    tracked = sql.tracked_by_provider(conn, [a.provider_id for a in acks])
    states = {t.id: t.state for t in tracked.values()}
    batch = _Batch(conn, now)
    unknown: list[Ack] = []
    moved = 0
    for ack in acks:
        if not late:  # a kept ack was counted when it arrived
            ACKS.labels(_metric_status(ack.status)).inc()
        target = tracked.get(ack.provider_id)
        if target is None:
            unknown.append(ack)
            continue
        current = states[target.id]
        new, changed = statemachine.apply(current, ack.status)
        detail = {**ack.detail(), "applied": changed, **({"late": True} if late else {})}
        batch.history.append((target.id, now, "ack", detail))
        if not changed:
            continue
        moved += 1
        if new is State.FAILED:
            batch.flush()  # the failure reads and writes the row: earlier moves go first
            row = sql.full(conn, target.id)
            if row is not None:
                new = failed_ack(conn, row, error=ack.error, code=ack.code, now=now, ctx=ctx)
        else:
            batch.moves.append((target.id, current, new))
            NOTIFICATIONS.labels(target.rule_id, new.value).inc()
        states[target.id] = new
    batch.flush()
    if unknown and keep_unknown:
        sql.keep_pending(conn, [(a.provider_id, a.status, _payload(a)) for a in unknown], now)
        log.debug("kept %d acks for message ids not (yet) in the ledger", len(unknown))
    return AckReport(len(acks) - len(unknown), moved, len(unknown) if keep_unknown else 0)


def _payload(ack: Ack) -> dict[str, Any]:
    return {"id": ack.provider_id, **ack.detail()}


def _from_payload(doc: Mapping[str, Any]) -> Ack:
    code = doc.get("code")
    return Ack(
        str(doc["id"]),
        str(doc["status"]),
        str(doc.get("error", "")),
        code if isinstance(code, int) else None,
        str(doc.get("source", "webhook")),
    )


def apply_pending(
    conn: sqlite3.Connection,
    now: float,
    ctx: PolicyContext,
    *,
    ids: Sequence[int] | None = None,
    received_since: float = 0.0,
) -> int:
    """Apply kept acks whose message is now recorded (of ``ids``, or received since
    ``received_since``); returns how many were applied."""
    rows = sql.pending_for(conn, ids=ids, received_since=received_since)
    if not rows:
        return 0
    apply_acks(conn, [_from_payload(p) for _, p in rows], now, ctx, keep_unknown=False, late=True)
    sql.mark_applied(conn, [row_id for row_id, _ in rows])
    return len(rows)


def record_ack_batches(
    store: SqliteStore, batches: Sequence[Sequence[Ack]], now: float, ctx: PolicyContext
) -> list[AckReport]:
    """Apply several batches (several webhook calls) in one transaction, in order; one report
    per batch. One commit for many calls is what keeps the webhook fast under load."""
    with store.transaction() as conn:
        return [apply_acks(conn, acks, now, ctx) if acks else AckReport() for acks in batches]


def record_acks(
    store: SqliteStore, acks: Sequence[Ack], now: float, ctx: PolicyContext
) -> AckReport:
    """Apply one batch of acks in one transaction (what the webhook and the poller call)."""
    if not acks:
        return AckReport()
    with store.transaction() as conn:
        return apply_acks(conn, acks, now, ctx)
