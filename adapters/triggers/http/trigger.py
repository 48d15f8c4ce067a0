"""The ``http`` trigger itself: one event endpoint, its idempotency keys and its refusals (see
the package's docstring for the block and the answers)."""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from nextstep.adapters.triggers.config import ConfigReader, read_progress
from nextstep.adapters.triggers.http.answer import answer
from nextstep.adapters.triggers.http.body import (
    BadRequest,
    TooDeep,
    body_digest,
    check,
    parse,
    read_body,
)
from nextstep.adapters.triggers.http.coalesce import Coalescer
from nextstep.adapters.triggers.http.settings import (
    CONFIG_SCHEMA,
    event_path,
    read_settings,
    schema_fields,
)
from nextstep.adapters.triggers.refusals import refuse, refuse_render_errors, render_errors
from nextstep.engine.errors import ProgressClaimed, StoreError
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import ConfigProblem, Emit, EventFields, Trigger, TriggerContext
from nextstep.engine.rules.config import DEFAULT_MAX_BODY

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


class HttpTrigger:
    """One event endpoint; the daemon's server routes ``POST /events/<name>`` to
    :meth:`handle` (see :func:`~.routes.events_routes`)."""

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
        """The routes the daemon's server mounts for every http trigger."""
        from nextstep.adapters.triggers.http.routes import events_routes

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
        self._coalescer = Coalescer()  # requests without a key: written together (coalesce.py)

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

    def refused(self, request: Request, status: int, reason: str, error: str) -> None:
        """Count and log a refused request."""
        self._stats["last_error"] = error
        refuse(
            log,
            self.path,
            reason,
            f"http {self.path}: refused {status} ({reason}) from {_client(request)}: {error}",
        )

    async def handle(self, request: Request) -> Response:
        """The endpoint (the caller has checked the token)."""
        emit = self._emit
        if emit is None:
            return JSONResponse(
                {"error": "this event path is not accepting events right now"}, status_code=503
            )
        key = request.headers.get("idempotency-key")
        explain = request.query_params.get("explain", "") in {"1", "true", "yes"}
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
                raise BadRequest(
                    400, "bad_key", {"error": "Idempotency-Key must be 1 to 255 characters"}
                )
            body = await read_body(request, self.max_body)
            items = parse(body, media)
            check(items, self._validator)
        except BadRequest as exc:
            self.refused(request, exc.status, exc.reason, exc.answer["error"])
            return JSONResponse(exc.answer, status_code=exc.status)
        except ClientDisconnect:
            # Nothing to answer and nothing wrong on our side: one line, no traceback.
            refuse(
                log,
                self.path,
                "disconnected",
                f"http {self.path}: the client {_client(request)} disconnected before the "
                "body was complete; nothing was taken",
                level=logging.INFO,
            )
            return Response(status_code=400)
        try:
            if key is None:
                return JSONResponse(await self._accept(emit, items, explain, []), status_code=202)
            return await self._accept_once(emit, items, body_digest(items, body), explain, key)
        except StoreError as exc:
            # A retry is safe: without a key nothing was stored; with one, a batch that was
            # committed after all is found by its key.
            log.error("http %s: the ledger refused the events: %s", self.path, exc)
            return JSONResponse(
                {"error": "the events could not be stored; retry later"}, status_code=503
            )

    async def _accept_once(
        self, emit: Emit, items: list[Any], digest: str, explain: bool, key: str
    ) -> Response:
        progress_key = f"http:{self.path}:idem:{key}"
        lock = self._locks.get(progress_key)
        if lock is None:
            lock = self._locks[progress_key] = asyncio.Lock()
        async with lock:
            stored = await read_progress(self.context, progress_key)
            if stored is not None:
                return self._replay(json.loads(stored), digest, key)
            # The ids are only known once the batch is committed, so the key is claimed (with
            # the body's digest) in that transaction and the full answer written right after;
            # a crash in between leaves the key claimed (nothing is created twice) with this
            # shorter answer.
            claim = {
                "events": len(items),
                "notifications": None,
                "note": "the first answer was not recorded",
            }
            first = [
                Progress(
                    progress_key, json.dumps({"body_sha256": digest, "answer": claim}), claim=True
                )
            ]
            try:
                done = await self._accept(emit, items, explain, first)
            except ProgressClaimed:
                # Another worker took the same key first (the claim is one row in the ledger):
                # its answer is the answer, as if this request came after it.
                stored = await read_progress(self.context, progress_key)
                if stored is None:
                    raise
                return self._replay(json.loads(stored), digest, key)
            kept = json.dumps({"body_sha256": digest, "answer": done})
            await emit([], [Progress(progress_key, kept)])
        return JSONResponse(done, status_code=202)

    def _replay(self, stored: Any, digest: str, key: str) -> Response:
        """The first answer for ``key``; 422 when it came with another body. A key claimed
        before bodies were hashed (the stored value is the answer itself) keeps answering."""
        if isinstance(stored, dict) and "body_sha256" in stored and "answer" in stored:
            if stored["body_sha256"] != digest:
                error = (
                    f"Idempotency-Key {key!r} was already used with a different body; "
                    "send a new key for a new request"
                )
                self._stats["last_error"] = error
                refuse(log, self.path, "idempotency_conflict", f"http {self.path}: 422: {error}")
                return JSONResponse({"error": error, "key": key}, status_code=422)
            stored = stored["answer"]
        return JSONResponse(stored, status_code=202, headers={"Idempotent-Replayed": "true"})

    async def _accept(
        self, emit: Emit, items: list[Any], explain: bool, progress: list[Progress]
    ) -> dict[str, Any]:
        taken = [(i, item) for i, item in enumerate(items) if not isinstance(item, TooDeep)]
        refused = [(i, item.reason) for i, item in enumerate(items) if isinstance(item, TooDeep)]
        events = [
            Event(item, {"kind": "http", "source": self.path, "index": index})
            for index, item in taken
        ]
        if progress:
            results = await emit(events, progress)
        else:
            results = await self._coalescer.emit(emit, events)
        self._stats["requests"] += 1
        self._stats["events"] += len(events)
        indexed = [(index, result) for (index, _), result in zip(taken, results, strict=True)]
        what = f"http {self.path}"
        for index, reason in refused:
            refuse(log, self.path, "bad_event", f"{what}: event {index} refused: {reason}")
        failed = [(f"event {taken[i][0]}", reason) for i, reason in render_errors(results)]
        refuse_render_errors(log, self.path, what, failed)
        return answer(len(items), indexed, refused, explain)
