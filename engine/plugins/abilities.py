"""Optional abilities of plug-ins: runtime-checkable Protocols the engine tests with
``isinstance`` (on the plug-in class or on an instance, as each one says), never by probing
attributes. A plug-in has an ability by defining its members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from starlette.routing import BaseRoute

from nextstep.engine.plugins.contract import CompiledSend, Trigger


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


class ProviderTemplate(Protocol):
    """A message template a provider keeps (what ``nextstep templates`` lists)."""

    @property
    def name(self) -> str: ...

    @property
    def language(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def body(self) -> str:
        """The approved body text."""
        ...

    @property
    def variables(self) -> int: ...

    @property
    def approved(self) -> bool:
        """True when the template can be sent."""
        ...

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        ...


@dataclass(frozen=True, slots=True)
class TemplateCheck:
    """One send compared with the provider's templates: which template, and what is wrong
    (``errors``) or worth knowing (``notes``)."""

    template: str
    language: str
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@runtime_checkable
class ListsTemplates(Protocol):
    """A channel whose provider keeps approved templates (``nextstep templates``): the instance
    lists them, the class compares one of its compiled sends with them."""

    async def list_templates(self) -> Sequence[ProviderTemplate]:
        """Every template of the account, approved or not."""
        ...

    @staticmethod
    def check_send(
        send: CompiledSend, templates: Sequence[ProviderTemplate]
    ) -> TemplateCheck | None:
        """The comparison of one compiled send with the templates; None when the send does
        not use a template."""
        ...
