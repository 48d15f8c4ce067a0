"""``POST /events/{path}``: the token, the path, then the trigger's :meth:`handle`."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.adapters.triggers.http.settings import PREFIX, event_path
from nextstep.adapters.triggers.http.trigger import HttpTrigger
from nextstep.adapters.triggers.refusals import refuse

log = logging.getLogger("nextstep.adapters.triggers.http.trigger")

UNKNOWN = "unknown"  # the refusal counter's trigger for a path no rule listens on


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
        path = event_path(request.path_params["path"])
        trigger = triggers_by_path.get(path) or triggers_by_path.get(path[len(PREFIX) :])
        shown = repr(path[:100])
        if not _authorised(request, expected):
            error = "missing or wrong Authorization: Bearer token"
            if trigger is not None:
                trigger.refused(request, 401, "unauthorized", error)
            else:
                refuse(log, UNKNOWN, "unauthorized", f"http {shown}: refused 401: {error}")
            return JSONResponse(
                {"error": error}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        if trigger is None:
            refuse(log, UNKNOWN, "unknown_path", f"http {shown}: refused 404: no rule listens")
            return JSONResponse({"error": f"no rule listens on {path}"}, status_code=404)
        return await trigger.handle(request)

    return [Route(PREFIX + "{path:path}", endpoint, methods=["POST"])]


def events_app(triggers_by_path: Mapping[str, HttpTrigger], token: str) -> Starlette:
    """A Starlette app serving :func:`events_routes` (what the daemon mounts)."""
    return Starlette(routes=events_routes(triggers_by_path, token))
