"""``/optouts`` on the daemon's server: a CRM pushes its own unsubscribe list, reads it back.

::

    POST   /optouts                 {"phone": "+34 600 111 222", "channel": "<name>",
                                     "note": "unsubscribed in the CRM"}   (or a list of them,
                                     or {"optouts": [...]}); channel absent: every channel
    DELETE /optouts/{phone}         lift the number's opt-outs (?channel=NAME: only that one)
    DELETE /optouts                 the same for a list: [{"phone", "channel"?}, …]
    GET    /optouts[?phone=…]       {"optouts": [{"phone", "channel", "at", "how", "note"}]}

``Authorization: Bearer`` with ``server.optout_token`` (else ``server.event_token``). Numbers
are read like a rule's ``to:``. POST and DELETE are idempotent: a repeated call answers 200
and changes nothing (``already`` / ``removed: 0``). A body with any entry that cannot be read
is refused whole (400, every problem listed), so a retry after fixing it is safe. Adding skips
what is queued for the recipient in the same ledger transaction.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.errors import StoreError
from nextstep.engine.ledger.base import OptOut
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.model import ALL_CHANNELS
from nextstep.engine.optout import entries
from nextstep.engine.optout.entries import Directory, EntryError

PATH = "/optouts"
MAX_ENTRIES = 10_000  # per request
MAX_BODY = 4 * 1_048_576


class _Refused(Exception):
    def __init__(self, status: int, answer: dict[str, Any]) -> None:
        super().__init__(answer.get("error", ""))
        self.status, self.answer = status, answer


def _authorised(request: Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token)
    )


async def _items(request: Request) -> list[Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise _Refused(413, {"error": f"the body is over {MAX_BODY} bytes"})
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Refused(400, {"error": f"the body is not JSON: {exc}"}) from None
    if isinstance(data, Mapping) and "phone" not in data and isinstance(data.get("optouts"), list):
        data = data["optouts"]
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_ENTRIES:
        raise _Refused(413, {"error": f"more than {MAX_ENTRIES} entries; send them in parts"})
    return items


def _read(
    items: list[Any], directory: Directory, *, default_channel: str | None
) -> list[tuple[str, str | None, str]]:
    """``(recipient, channel or None, note)`` of each entry; 400 listing every problem."""
    read: list[tuple[str, str | None, str]] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append({"index": index, "error": "an entry is a JSON object"})
            continue
        try:
            channel = item.get("channel")
            read.append(
                (
                    directory.recipient(item.get("phone")),
                    default_channel if channel is None else directory.channel(channel),
                    str(item.get("note") or ""),
                )
            )
        except EntryError as exc:
            problems.append({"index": index, "error": str(exc)})
    if problems:
        raise _Refused(400, {"error": "entries that cannot be read", "details": problems})
    return read


class _Api:
    """The handlers, bound to the ledger, the clock and how entries are read."""

    def __init__(
        self, runner: LedgerRunner, clock: Callable[[], float], directory: Directory
    ) -> None:
        self.runner, self.store, self.clock, self.directory = runner, runner.store, clock, directory

    async def add(self, request: Request) -> Response:
        read = _read(await _items(request), self.directory, default_channel=ALL_CHANNELS)
        now = self.clock()
        new = [OptOut(r, c or ALL_CHANNELS, now, "api", note) for r, c, note in read]
        done = await self.runner.call(entries.add, self.store, new)
        skipped = [nid for nid, _ in done.skipped]
        return JSONResponse({"added": done.added, "already": done.already, "skipped": skipped})

    async def remove(self, request: Request) -> Response:
        if "phone" in request.path_params:
            item: dict[str, Any] = {"phone": request.path_params["phone"]}
            if "channel" in request.query_params:
                item["channel"] = request.query_params["channel"]
            items: list[Any] = [item]
        else:
            items = await _items(request)
        removed = 0
        for recipient, channel, _ in _read(items, self.directory, default_channel=None):
            removed += await self.runner.call(entries.remove, self.store, recipient, channel, "api")
        return JSONResponse({"removed": removed})

    async def listing(self, request: Request) -> Response:
        phone = request.query_params.get("phone")
        wanted = None
        if phone is not None:
            wanted = [_read([{"phone": phone}], self.directory, default_channel=None)[0][0]]
        limit = request.query_params.get("limit", "1000")
        if not limit.isdecimal():
            raise _Refused(400, {"error": "limit is a whole number"})
        kept = await self.runner.call(self.store.optouts, recipients=wanted, limit=int(limit))
        return JSONResponse({"optouts": [_shown(o) for o in kept]})


def _shown(o: OptOut) -> dict[str, Any]:
    return {"phone": o.recipient, "channel": o.channel, "at": o.at, "how": o.how, "note": o.note}


def _guarded(
    handler: Callable[[Request], Awaitable[Response]], token: bytes
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if not _authorised(request, token):
            return JSONResponse(
                {"error": "missing or wrong Authorization: Bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return await handler(request)
        except _Refused as refused:
            return JSONResponse(refused.answer, status_code=refused.status)
        except StoreError as exc:
            return JSONResponse({"error": f"the ledger is unavailable: {exc}"}, status_code=503)

    return endpoint


def optout_routes(
    runner: LedgerRunner, clock: Callable[[], float], directory: Directory, token: str
) -> list[BaseRoute]:
    """The ``/optouts`` routes; ``token`` is the Bearer token they require (none: every
    request is refused)."""
    api = _Api(runner, clock, directory)
    expected = token.encode()
    return [
        Route(PATH, _guarded(api.add, expected), methods=["POST"]),
        Route(PATH, _guarded(api.remove, expected), methods=["DELETE"]),
        Route(PATH, _guarded(api.listing, expected), methods=["GET"]),
        Route(PATH + "/{phone}", _guarded(api.remove, expected), methods=["DELETE"]),
    ]


def optout_token(settings: Mapping[str, Any]) -> str:
    """The token ``/optouts`` requires: ``server.optout_token``, else ``server.event_token``
    (``settings`` is the whole nextstep.yaml)."""
    server = settings.get("server")
    server = server if isinstance(server, Mapping) else {}
    for key in ("optout_token", "event_token"):
        value = server.get(key)
        if value not in (None, ""):
            return str(value)
    return ""
