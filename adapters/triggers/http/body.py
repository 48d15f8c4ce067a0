"""A request body into events: read within the limit, parse (an object, an array, NDJSON),
check (objects, the event schema). Every refusal is a :class:`BadRequest` with its status, its
JSON answer and a reason word for the refusal counter.

One event nested too deep is refused alone (:class:`TooDeep` in its place), the rest are
taken: the ledger keeps events as JSON, and a pathological nesting must cost its own event,
never the request (nor a 500).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from starlette.requests import Request

MAX_DEPTH = 64  # levels of objects and arrays in one event (the event itself is level 1)
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")
# JSON strings (escapes included) and the punctuation that nests or separates, nothing else:
# enough to split a top-level array into its elements without parsing them.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


class BadRequest(Exception):
    """The request cannot become events; ``answer`` is the JSON error body, ``reason`` the
    refusal counter's label."""

    def __init__(self, status: int, reason: str, answer: dict[str, Any]) -> None:
        super().__init__(answer.get("error", ""))
        self.status = status
        self.reason = reason
        self.answer = answer


@dataclass(frozen=True, slots=True)
class TooDeep:
    """An event refused alone because of its nesting."""

    reason: str = f"the event is nested deeper than {MAX_DEPTH} levels"


async def read_body(request: Request, max_body: int) -> bytes:
    """The whole body, refused with 413 as soon as it is over ``max_body`` bytes. A client
    that hangs up raises starlette's ``ClientDisconnect``."""
    too_large = BadRequest(413, "too_large", {"error": f"the body is over {max_body} bytes"})
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdecimal():
            raise BadRequest(400, "bad_body", {"error": "Content-Length is not a number"})
        if int(length) > max_body:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, media_type: str) -> list[Any]:
    """The body's events: an object, an array, or NDJSON lines (a too-deep one as TooDeep)."""
    if body.startswith(codecs.BOM_UTF8):  # some Windows clients start UTF-8 with a BOM
        body = body[len(codecs.BOM_UTF8) :]
    if not body.strip():
        raise BadRequest(400, "bad_body", {"error": "the body is empty; send a JSON object"})
    if media_type not in NDJSON_TYPES:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if _depth_error(exc):
                return _split_deep(body, exc)
            if len(body.strip().splitlines()) < 2:
                raise BadRequest(
                    400, "bad_body", {"error": f"the body is not JSON: {exc}"}
                ) from exc
        else:
            return [_shallow(item) for item in (parsed if isinstance(parsed, list) else [parsed])]
    return _ndjson(body)


def _depth_error(exc: orjson.JSONDecodeError) -> bool:
    return "depth limit" in str(exc) or "recursion" in str(exc).lower()


def _shallow(item: Any) -> Any:
    """``item``, or TooDeep when it nests more than :data:`MAX_DEPTH` levels."""
    if not isinstance(item, dict | list):
        return item
    stack: list[tuple[Any, int]] = [(item, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return TooDeep()
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return item


def _split_deep(body: bytes, exc: orjson.JSONDecodeError) -> list[Any]:
    """A body too deep for the parser: an array whose elements are parsed one by one (the deep
    ones refused alone); anything else is one too-deep event."""
    text = body.strip()
    if text[:1] != b"[" or text[-1:] != b"]":
        return [TooDeep()]
    parts: list[bytes] = []
    depth, start = 0, 1
    for token in _TOKENS.finditer(text, 1, len(text) - 1):
        first = token.group()[:1]
        if first in (b"[", b"{"):
            depth += 1
        elif first in (b"]", b"}"):
            depth -= 1
        elif first == b"," and depth == 0:
            parts.append(text[start : token.start()])
            start = token.end()
    parts.append(text[start:-1])
    items: list[Any] = []
    for part in parts:
        try:
            items.append(_shallow(orjson.loads(part)))
        except orjson.JSONDecodeError as inner:
            if not _depth_error(inner):
                raise BadRequest(
                    400, "bad_body", {"error": f"the body is not JSON: {exc}"}
                ) from exc
            items.append(TooDeep())
    return items


def _ndjson(body: bytes) -> list[Any]:
    items: list[Any] = []
    problems: list[str] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(_shallow(orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            if _depth_error(exc):
                items.append(TooDeep())
            else:
                problems.append(f"line {number}: {exc}")
    if problems:
        raise BadRequest(
            400, "bad_body", {"error": "the body is neither JSON nor NDJSON", "details": problems}
        )
    return items


def check(items: Sequence[Any], validator: Draft202012Validator | None) -> None:
    """Every item must be a JSON object satisfying the schema (TooDeep ones aside); else 400
    listing them all."""
    not_objects = [
        f"event {i} is {type(item).__name__}, not an object"
        for i, item in enumerate(items)
        if not isinstance(item, dict | TooDeep)
    ]
    if not_objects:
        raise BadRequest(
            400, "bad_body", {"error": "every event must be a JSON object", "details": not_objects}
        )
    if validator is None:
        return
    violations = [
        {
            "event": i,
            "path": "/" + "/".join(str(p) for p in error.absolute_path),
            "message": error.message,
        }
        for i, item in enumerate(items)
        if isinstance(item, dict)
        for error in sorted(validator.iter_errors(item), key=lambda e: e.path)
    ]
    if violations:
        raise BadRequest(
            400, "schema", {"error": "the body does not match the schema", "violations": violations}
        )


def body_digest(items: Sequence[Any], body: bytes) -> str:
    """What an ``Idempotency-Key`` is bound to: the events themselves (key order and spacing
    aside), or the raw bytes when an event was too deep to be written out again."""
    if any(isinstance(item, TooDeep) for item in items):
        return hashlib.sha256(body).hexdigest()
    try:
        canonical = orjson.dumps(list(items), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits…
        canonical = body
    return hashlib.sha256(canonical).hexdigest()
