"""Optional abilities of plug-ins: runtime-checkable Protocols the engine tests with
``isinstance`` (on the plug-in class or on an instance, as each one says), never by probing
attributes. A plug-in has an ability by defining its members.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from starlette.routing import BaseRoute

from nextstep.engine.plugins.contract import Trigger


@runtime_checkable
class ServesRoutes(Protocol):
    """A trigger class whose triggers receive HTTP requests on the daemon's server."""

    @staticmethod
    def routes(live: Mapping[str, Trigger], token: str) -> list[BaseRoute]:
        """The routes to mount. ``live`` maps source keys to the running triggers of this kind
        and is read on every request (reloads swap triggers in it); ``token`` is
        ``server.event_token``."""
        ...


@runtime_checkable
class ReportsStatus(Protocol):
    """A trigger or channel instance that reports its state; merged into ``/healthz``."""

    def status(self) -> dict[str, Any]:
        """JSON-ready details (a trigger reporting ``{"state": "error"}`` makes health
        degraded)."""
        ...
