"""The ``http`` trigger: ``POST /events/<name>`` turns a JSON body into events.

::

    trigger:
      http:
        path: /events/loans      # the endpoint; rules with the same path share it
        schema: {...}            # optional JSON Schema every event must satisfy
        max_body: 1048576        # bytes (default: server.max_body); larger is refused with 413

The body is one JSON object (one event), a JSON array of objects, or NDJSON (one object per
line). Answers: 202 ``{"events": n, "notifications": [ids…]}`` (``errors`` lists events a rule
could not render; ``?explain=1`` adds every rule's result, e.g. why it skipped); 400 for a body
that is not JSON objects or breaks the schema (every violation listed); 401 without the right
``Authorization: Bearer`` token; 404 for an unknown path; 413 for a body over ``max_body``.

With an ``Idempotency-Key`` header the first answer is kept in the ledger (progress key
``http:<path>:idem:<key>``, committed in the same transaction as the notifications); the same
key again returns that answer and creates nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import orjson
from jsonschema import Draft202012Validator, SchemaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.adapters.triggers.config import ConfigReader, read_progress
from nextstep.engine.errors import StoreError
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import (
    ConfigProblem,
    Emit,
    EventFields,
    EventResult,
    Trigger,
    TriggerContext,
)
from nextstep.engine.rules.config import DEFAULT_MAX_BODY

log = logging.getLogger(__name__)

PREFIX = "/events/"
MAX_KEY_LENGTH = 255
_NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")


class BadRequest(Exception):
    """The request cannot become events; ``answer`` is the JSON error body."""

    def __init__(self, status: int, answer: dict[str, Any]) -> None:
        super().__init__(answer.get("error", ""))
        self.status = status
        self.answer = answer


def event_path(path: str) -> str:
    """``loans`` or ``/events/loans/`` → ``/events/loans`` (the trigger's source key)."""
    name = path.strip("/")
    if name.startswith(PREFIX.strip("/") + "/"):
        name = name[len(PREFIX) - 1 :]
    return PREFIX + name


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "POST /events/… with a Bearer token.",
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "path": {
            "type": "string",
            "pattern": "^/events/[A-Za-z0-9._~/-]+$",
            "x-messages": {"pattern": "{value} is not an event path (use /events/<name>)"},
        },
        "schema": {"type": "object", "description": "A JSON Schema every event body must satisfy."},
        "max_body": {
            "type": "integer",
            "minimum": 1,
            "description": "Largest accepted body in bytes.",
        },
    },
}


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The ``http:`` block read: the event path, the body limit, the body's validator."""

    path: str
    max_body: int
    validator: Draft202012Validator | None


def read_settings(
    config: Mapping[str, Any], default_max: int = DEFAULT_MAX_BODY
) -> tuple[HttpSettings, list[ConfigProblem]]:
    """The ``http:`` block read, and every problem found in it."""
    read = ConfigReader("http", config, tuple(CONFIG_SCHEMA["properties"]))
    path = event_path(read.text("path", required=True))
    max_body = read.positive_int("max_body", default_max)
    schema = read.mapping("schema")
    validator = None
    if schema:
        try:
            Draft202012Validator.check_schema(schema)
            validator = Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        except SchemaError as exc:
            read.fail("schema", f"is not a valid JSON Schema: {exc.message}")
    return HttpSettings(path, max_body, validator), read.problems


def schema_fields(schema: Any) -> EventFields | None:
    """The top-level fields an event schema allows, when it is closed (``properties`` with
    ``additionalProperties: false`` or ``unevaluatedProperties: false``); else None."""
    if not isinstance(schema, Mapping) or schema.get("patternProperties"):
        return None
    properties = schema.get("properties")
    closed = False in (schema.get("additionalProperties"), schema.get("unevaluatedProperties"))
    if not isinstance(properties, Mapping) or not closed:
        return None
    return EventFields(frozenset(map(str, properties)), True, "the http trigger's schema")


class HttpTrigger:
    """One event endpoint; the daemon's server routes ``POST /events/<name>`` to
    :meth:`handle` (see :func:`events_app`)."""

    kind: ClassVar[str] = "http"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA

    @staticmethod
    def source_key(config: Mapping[str, Any]) -> str:
        """Rules with the same path share one endpoint."""
        return event_path(str(config.get("path", "")))

    @staticmethod
    def check(config: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
        """What the constructor would refuse (an event schema that is not a JSON Schema…)."""
        return read_settings(config)[1]

    @staticmethod
    def event_fields(config: Mapping[str, Any]) -> EventFields | None:
        """The event schema's properties, when it admits no others (``DeclaresFields``)."""
        return schema_fields(config.get("schema"))

    @staticmethod
    def routes(triggers_by_path: Mapping[str, Trigger], token: str) -> list[BaseRoute]:
        """The routes the daemon's server mounts for every http trigger (see
        :func:`events_routes`)."""
        return events_routes(cast(Mapping[str, HttpTrigger], triggers_by_path), token)

    def __init__(self, config: Mapping[str, Any], context: TriggerContext) -> None:
        # The server-wide limit (``server.max_body``, passed in ``context.extra``) is the default.
        default_max = int(context.extra.get("max_body", DEFAULT_MAX_BODY))
        settings, problems = read_settings(config, default_max)
        ConfigReader.raise_problems("http", problems)
        self.path = settings.path
        self.max_body = settings.max_body
        self._validator = settings.validator
        self.context = context
        self._emit: Emit | None = None
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._stats: dict[str, Any] = {"requests": 0, "events": 0, "last_error": None}

    def status(self) -> dict[str, Any]:
        """Requests and events accepted, the last refused request's reason (for health)."""
        return {**self._stats, "path": self.path, "running": self._emit is not None}

    async def run(self, emit: Emit) -> None:
        """Accept events until cancelled (the server does the listening)."""
        self._emit = emit
        try:
            await asyncio.Event().wait()
        finally:
            self._emit = None

    async def handle(self, request: Request) -> Response:
        """The endpoint (the caller has checked the token)."""
        emit = self._emit
        if emit is None:
            return _error(503, "this event path is not accepting events right now")
        key = request.headers.get("idempotency-key")
        explain = request.query_params.get("explain", "") in {"1", "true", "yes"}
        try:
            if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
                raise BadRequest(400, {"error": "Idempotency-Key must be 1 to 255 characters"})
            items = self._check(self._parse(await self._read_body(request), request))
        except BadRequest as exc:
            self._stats["last_error"] = exc.answer["error"]
            return JSONResponse(exc.answer, status_code=exc.status)
        try:
            if key is None:
                answer = await self._accept(emit, items, explain, [])
                return JSONResponse(answer, status_code=202)
            return await self._accept_once(emit, items, explain, key)
        except StoreError as exc:
            # A retry is safe: without a key nothing was stored; with one, a batch that was
            # committed after all is found by its key.
            log.error("http %s: the ledger refused the events: %s", self.path, exc)
            return _error(503, "the events could not be stored; retry later")

    async def _accept_once(
        self, emit: Emit, items: list[dict[str, Any]], explain: bool, key: str
    ) -> Response:
        progress_key = f"http:{self.path}:idem:{key}"
        lock = self._locks.get(progress_key)
        if lock is None:
            lock = self._locks[progress_key] = asyncio.Lock()
        async with lock:
            stored = await read_progress(self.context, progress_key)
            if stored is not None:
                return JSONResponse(
                    json.loads(stored), status_code=202, headers={"Idempotent-Replayed": "true"}
                )
            # The ids are only known once the batch is committed, so the key is claimed in that
            # transaction and the full answer written right after; a crash in between leaves
            # the key claimed (nothing is created twice) with this shorter answer.
            claim = json.dumps(
                {
                    "events": len(items),
                    "notifications": None,
                    "note": "the first answer was not recorded",
                }
            )
            answer = await self._accept(emit, items, explain, [Progress(progress_key, claim)])
            await emit([], [Progress(progress_key, json.dumps(answer))])
        return JSONResponse(answer, status_code=202)

    async def _accept(
        self, emit: Emit, items: list[dict[str, Any]], explain: bool, progress: list[Progress]
    ) -> dict[str, Any]:
        events = [
            Event(item, {"kind": "http", "source": self.path, "index": index})
            for index, item in enumerate(items)
        ]
        results = await emit(events, progress)
        self._stats["requests"] += 1
        self._stats["events"] += len(events)
        return _answer(results, explain)

    async def _read_body(self, request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise BadRequest(400, {"error": "Content-Length is not a number"})
            if int(length) > self.max_body:
                raise BadRequest(413, {"error": f"the body is over {self.max_body} bytes"})
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise BadRequest(413, {"error": f"the body is over {self.max_body} bytes"})
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse(self, body: bytes, request: Request) -> list[Any]:
        """The body's events: an object, an array, or NDJSON lines."""
        if not body.strip():
            raise BadRequest(400, {"error": "the body is empty; send a JSON object"})
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in _NDJSON_TYPES:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if len(body.strip().splitlines()) < 2:
                    raise BadRequest(400, {"error": f"the body is not JSON: {exc}"}) from exc
            else:
                return parsed if isinstance(parsed, list) else [parsed]
        return _ndjson(body)

    def _check(self, items: list[Any]) -> list[dict[str, Any]]:
        """Every item must be a JSON object satisfying the schema; else 400 listing them all."""
        not_objects = [
            f"event {i} is {type(item).__name__}, not an object"
            for i, item in enumerate(items)
            if not isinstance(item, dict)
        ]
        if not_objects:
            raise BadRequest(
                400, {"error": "every event must be a JSON object", "details": not_objects}
            )
        if self._validator is not None:
            violations = [
                {
                    "event": i,
                    "path": "/" + "/".join(str(p) for p in error.absolute_path),
                    "message": error.message,
                }
                for i, item in enumerate(items)
                for error in sorted(self._validator.iter_errors(item), key=lambda e: e.path)
            ]
            if violations:
                raise BadRequest(
                    400, {"error": "the body does not match the schema", "violations": violations}
                )
        return items


def _ndjson(body: bytes) -> list[Any]:
    items: list[Any] = []
    problems: list[str] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        raise BadRequest(400, {"error": "the body is neither JSON nor NDJSON", "details": problems})
    return items


def _answer(results: Sequence[EventResult], explain: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "events": len(results),
        "notifications": [
            r.notification_id
            for result in results
            for r in result.results
            if r.status == "queued" and r.notification_id is not None
        ],
    }
    errors = [
        {"event": i, "rule": r.rule_id, "reason": r.reason}
        for i, result in enumerate(results)
        for r in result.errors
    ]
    if errors:
        answer["errors"] = errors
    if explain:
        answer["explain"] = [
            {
                "event": i,
                "rule": r.rule_id,
                "status": r.status,
                "reason": r.reason,
                "notification_id": r.notification_id,
            }
            for i, result in enumerate(results)
            for r in result.results
        ]
    return answer


def _authorised(request: Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token)


def events_routes(triggers_by_path: Mapping[str, HttpTrigger], token: str) -> list[BaseRoute]:
    """The ``POST /events/{path}`` route. ``triggers_by_path`` is read on every request (keys
    ``/events/<name>`` or ``<name>``), so the daemon may swap triggers in it on reload."""
    expected = token.encode()

    async def endpoint(request: Request) -> Response:
        if not _authorised(request, expected):
            return JSONResponse(
                {"error": "missing or wrong Authorization: Bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        path = event_path(request.path_params["path"])
        trigger = triggers_by_path.get(path) or triggers_by_path.get(path[len(PREFIX) :])
        if trigger is None:
            return _error(404, f"no rule listens on {path}")
        return await trigger.handle(request)

    return [Route(PREFIX + "{path:path}", endpoint, methods=["POST"])]


def events_app(triggers_by_path: Mapping[str, HttpTrigger], token: str) -> Starlette:
    """A Starlette app serving :func:`events_routes` (what the daemon mounts)."""
    return Starlette(routes=events_routes(triggers_by_path, token))
