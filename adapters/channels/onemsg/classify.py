"""Classify 1MSG answers once, at the channel boundary (pure: no I/O, time passed in).

An answer is HTTP status + headers + body. 1MSG reports failures in several shapes, all handled:

* HTTP 2xx with ``{"sent": true, "id": "wamid…"}`` — accepted (not delivered);
* HTTP 200 with ``{"sent": false, "message": "…"}`` — refused, the text says why;
* HTTP 400 with ``{"message": "template is not defined"}`` — 1MSG's own validation;
* a passed-through Meta Graph error ``{"error": {"code": 132000, "error_data": {"details"}}}``
  (``error.code`` or ``error.error_code``; a ``(#132000)`` in a message text counts too);
* plain HTTP statuses: 401/403 (account), 429 (``Retry-After``), 5xx.

Precedence: an accepted send; then a known Meta code (it is the most specific); then the
decisive HTTP statuses (401/403/404 account, 408/429/5xx transient); then known texts; then a
queued ``jobId`` (in doubt: it may still be sent); then the status alone.

Meta codes by class (DESIGN §4, reference §6.5 and §9):

=========  ==============================================================================
transient  1, 2, 4, 80007, 130429, 131000, 131016, 131056 (≥ 6 s), 131057, 133004
recipient  130472, 131021, 131026, 131030, 131047, 131049, 131050
template   132000, 132001, 132005, 132007, 132012, 132015, 132016, 132018, and payload
           errors 100, 131008, 131009, 131051, 131052, 131053, 135000 (any other 132xxx)
account    0, 3, 10, 190, 200, 368, 131005, 131031, 131042, 131048, 133010
=========  ==============================================================================

131049 (marketing per-user limit) is a recipient failure: Meta forbids a retry within 24 h,
so the rule's fallback runs instead. 131048 (spam rate limit) opens the circuit: the sender
must pause for hours, which is what an account failure does.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from nextstep.engine.model import Outcome, OutcomeKind

_T, _R, _P, _A = (
    OutcomeKind.TRANSIENT,
    OutcomeKind.RECIPIENT,
    OutcomeKind.TEMPLATE,
    OutcomeKind.ACCOUNT,
)

META_CODES: Mapping[int, OutcomeKind] = {
    **dict.fromkeys((1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057, 133004), _T),
    **dict.fromkeys((130472, 131021, 131026, 131030, 131047, 131049, 131050), _R),
    **dict.fromkeys((132000, 132001, 132005, 132007, 132012, 132015, 132016, 132018), _P),
    **dict.fromkeys((100, 131008, 131009, 131051, 131052, 131053, 135000), _P),
    **dict.fromkeys((0, 3, 10, 190, 200, 368, 131005, 131031, 131042, 131048, 133010), _A),
}
"""Meta error code → class; see the module docstring."""

PAIR_RATE_WAIT = 6.0
"""Seconds to wait after 131056 (same recipient too often) when no Retry-After says more."""

RATE_LIMIT_CODES = frozenset({4, 80007, 130429})
"""App, WABA and throughput limits: the whole channel pauses (``Outcome.pause``)."""

# Texts 1MSG (or Meta, in failed acks) is known to use; the first match wins.
_TEXTS: tuple[tuple[re.Pattern[str], OutcomeKind], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"wrong token|invalid token|unauthori[sz]ed|subscription|\btrial\b|not authori[sz]ed", _A),
        (r"payment|eligibility|account (is )?(locked|restricted|blocked)|policy violation", _A),
        (r"spam rate limit", _A),
        (r"too many request|rate limit|try again later|temporarily unavailable", _T),
        (r"service unavailable|something went wrong|internal (server )?error", _T),
        (r"template is not defined|template\b.*\b(not found|does not exist|not approved)", _P),
        (r"template\b.*\b(paused|disabled)|param(eter)?s?\b|hydrated|translated text", _P),
        (r"wrong file|empty body|unsupported", _P),
        (r"experiment|not (a|on) whatsapp|whatsapp user|undeliverable|invalid phone", _R),
        (r"phone number|healthy ecosystem|re-engagement|24 hour|dialog window", _R),
        (r"outside the allowed window|stopped marketing|opted out|not in allowed list", _R),
        (r"username is not found|not linked with bsuid|bsuid routing", _R),
    )
)
_CODE_IN_TEXT = re.compile(r"\(#(\d+)\)|\b(1[3-9]\d{4})\b")  # "(#132000)" or a bare known code
_ANSWER_LIMIT = 2000


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> Outcome:
    """Map one HTTP answer of ``sendTemplate`` to an :class:`Outcome`.

    ``now`` (Unix seconds) converts an HTTP-date ``Retry-After`` to seconds; it defaults to the
    system time so the function stays usable without a clock. A rate limit of the whole channel
    (HTTP 429, Meta 4, 80007, 130429) pauses it for ``retry_after`` (1 s when unsaid).
    """
    outcome = _classify(status, headers, body, now)
    if outcome.http_status == 429 or outcome.code in RATE_LIMIT_CODES:
        return dataclasses.replace(outcome, pause=outcome.retry_after or 1.0)
    return outcome


def _classify(status: int, headers: Mapping[str, str], body: bytes, now: float | None) -> Outcome:
    data = _json_object(body)
    answer = body[:_ANSWER_LIMIT].decode("utf-8", "replace")
    if 200 <= status < 300 and data is not None and data.get("sent") is True:
        message_id = data.get("id")
        if isinstance(message_id, str) and message_id:
            return Outcome(
                OutcomeKind.ACCEPTED, "accepted", message_id, http_status=status, answer=answer
            )
        return Outcome(
            OutcomeKind.IN_DOUBT, "accepted without a message id", http_status=status, answer=answer
        )

    now = time.time() if now is None else now
    retry_after = parse_retry_after(_header(headers, "retry-after"), now)
    base = Outcome(OutcomeKind.IN_DOUBT, http_status=status, retry_after=retry_after, answer=answer)
    text = _answer_text(data, answer)

    code = _meta_code(data, text)
    if code is not None and (kind := code_kind(code)) is not None:
        if code == 131056:
            retry_after = max(retry_after or 0.0, PAIR_RATE_WAIT)
        reason = f"Meta {code}: {text or 'no message'}"
        return _with(base, kind, reason, code=code, retry_after=retry_after)

    by_status = _decisive_status(status)
    if by_status is not None:
        return _with(base, by_status, f"HTTP {status}: {text or 'no message'}", code=code)

    text_kind = text_class(text)
    if text_kind is not None:
        return _with(base, text_kind, f"HTTP {status}: {text}", code=code)
    if data is not None and data.get("jobId"):
        return _with(base, OutcomeKind.IN_DOUBT, f"queued as job {data['jobId']}", code=code)
    return _with(
        base, _residual_status(status, data), f"HTTP {status}: {text or 'no message'}", code=code
    )


def classify_failed_ack(error_text: str) -> OutcomeKind:
    """Class of a ``failed`` ack from its human-readable ``error`` text.

    Failed acks carry text, not a code (reference §5.2); a code written in the text wins. An
    unrecognised text is a recipient failure: the message did not arrive, so no retry, fallback.
    """
    code = _code_in_text(error_text)
    kind = code_kind(code) if code is not None else None
    return kind or text_class(error_text) or OutcomeKind.RECIPIENT


def code_kind(code: int) -> OutcomeKind | None:
    """Class of a Meta error code, or None when the code is unknown."""
    if code in META_CODES:
        return META_CODES[code]
    if 132000 <= code < 133000:
        return OutcomeKind.TEMPLATE
    return None


def text_class(text: str) -> OutcomeKind | None:
    """Class of a known 1MSG or Meta error text, or None."""
    for pattern, kind in _TEXTS:
        if pattern.search(text):
            return kind
    return None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _with(base: Outcome, kind: OutcomeKind, reason: str, **changes: Any) -> Outcome:
    return dataclasses.replace(base, kind=kind, reason=reason, **changes)


def _decisive_status(status: int) -> OutcomeKind | None:
    if status in (401, 403, 404):
        # 404: unknown instance or method, so every send on this channel would fail alike.
        return OutcomeKind.ACCOUNT
    if status in (408, 425, 429) or status >= 500:
        return OutcomeKind.TRANSIENT
    return None


def _residual_status(status: int, data: dict[str, Any] | None) -> OutcomeKind:
    if 200 <= status < 300:
        # An explicit sent:false is a refusal; a 2xx we cannot read may have been sent.
        return (
            OutcomeKind.RECIPIENT
            if data is not None and data.get("sent") is False
            else (OutcomeKind.IN_DOUBT)
        )
    if status in (400, 422):
        return OutcomeKind.TEMPLATE  # the request itself was rejected as malformed
    return OutcomeKind.RECIPIENT


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _error_object(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    error = data.get("error")
    if isinstance(error, dict):
        return error
    response = data.get("response")
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return response["error"]  # type: ignore[no-any-return]
    return None


def _answer_text(data: dict[str, Any] | None, raw: str) -> str:
    if data is None:
        return raw.strip()[:300]
    parts: list[str] = []
    error = _error_object(data)
    if error is not None:
        for key in ("message", "error_user_title", "error_user_msg", "title"):
            if isinstance(error.get(key), str):
                parts.append(error[key])
        details = error.get("error_data")
        if isinstance(details, dict) and isinstance(details.get("details"), str):
            parts.append(details["details"])
    for key in ("message", "error", "description"):
        if isinstance(data.get(key), str) and data[key] not in parts:
            parts.append(data[key])
    return "; ".join(p for p in parts if p)


def _meta_code(data: dict[str, Any] | None, text: str) -> int | None:
    error = _error_object(data)
    if error is not None:
        for key in ("code", "error_code"):
            value = error.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.isdecimal():
                return int(value)
    return _code_in_text(text)


def _code_in_text(text: str) -> int | None:
    for match in _CODE_IN_TEXT.finditer(text):
        if match.group(1):
            return int(match.group(1))
        if int(match.group(2)) in META_CODES:  # a bare number only when it is a known code
            return int(match.group(2))
    return None
