"""The console's routes, mounted by the daemon beside its own (``/ui``, docs/console.md)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.clock import Clock
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.reads import ConsoleReads
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.plugins import TemplateButton
from nextstep.engine.rules.config import Config
from nextstep.engine.rules.console_config import ConsoleConfig
from nextstep.engine.runtime.console import auth
from nextstep.engine.runtime.console.decisions import Decisions
from nextstep.engine.runtime.console.host import ConsoleHost
from nextstep.engine.runtime.console.listing import Listing
from nextstep.engine.runtime.console.overview import Overview
from nextstep.engine.runtime.console.playground import Playground
from nextstep.engine.runtime.console.rules_page import RulesPage
from nextstep.engine.runtime.console.sessions import Signer
from nextstep.engine.runtime.console.web import PREFIX, Web, environment, secured

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


def _static() -> Route:
    files = {name: (STATIC / name).read_bytes() for name in ASSETS}

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files:
            return secured(Response("not found", status_code=404))
        response = Response(files[name], media_type=ASSETS[name])
        response.headers["Cache-Control"] = "public, max-age=3600"
        return secured(response)

    return Route(f"{PREFIX}/static/{{name}}", asset, methods=["GET"])


@dataclass
class OpenConsole:
    """The console's routes and the ledger connection they read through."""

    routes: list[BaseRoute]
    runner: LedgerRunner
    own: bool  # the runner is the console's own (closed with it)

    def close(self) -> None:
        """Close the console's own ledger connection."""
        if self.own:
            self.runner.close()


def open_console(
    settings: ConsoleConfig,
    shared: LedgerRunner,
    clock: Clock,
    config: Callable[[], Config],
    health: Callable[[], Mapping[str, Any]],
    reload: Callable[[], Mapping[str, Any]],
    buttons: Callable[[str, Mapping[str, Any]], Awaitable[Sequence[TemplateButton]]],
) -> OpenConsole | None:
    """The console of a daemon whose ledger ``shared`` runs: reads go through a second
    connection to the same ledger (an in-memory one is shared); None, logged, when the
    ledger's backend has no console reads."""
    url = config().store
    own = ":memory:" not in url
    runner = LedgerRunner(open_store(url)) if own else shared
    if not isinstance(runner.store, ConsoleReads):
        log.error("console: the ledger %s has no console reads; /ui is not served", url)
        if own:
            runner.close()
        return None
    host = ConsoleHost(runner, runner.store, clock, config, health, reload, buttons)
    return OpenConsole(console_routes(host, settings), runner, own)


def console_routes(host: ConsoleHost, settings: ConsoleConfig) -> list[BaseRoute]:
    """Every route of the console for ``settings`` (``server.console``)."""
    secret = settings.session_secret
    if secret is None:
        secret = secrets.token_urlsafe(32)
        log.info("console: no server.console.session_secret; logins last until a restart")
    web = Web(host, settings, Signer(secret), environment())

    async def index(request: Request) -> Response:
        return secured(RedirectResponse(f"{PREFIX}/overview", status_code=303))

    return [
        Route(PREFIX, index, methods=["GET"]),
        Route(f"{PREFIX}/", index, methods=["GET"]),
        _static(),
        *auth.routes(web),
        *Overview(web).routes(),
        *Listing(web).routes(),
        *Decisions(web).routes(),
        *RulesPage(web).routes(),
        *Playground(web).routes(),
    ]
