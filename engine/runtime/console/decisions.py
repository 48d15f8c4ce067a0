"""The trace page, the in-doubt list, and the operators' decisions: release (send it again) or
cancel, each with a reason, recorded in the history with who decided."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.ledger.reads import Decision
from nextstep.engine.runtime.console.listing import line
from nextstep.engine.runtime.console.masking import Masker
from nextstep.engine.runtime.console.sessions import Session
from nextstep.engine.runtime.console.trace import context, shown_buttons
from nextstep.engine.runtime.console.web import PREFIX, Web

log = logging.getLogger(__name__)
IN_DOUBT_LIMIT = 500
ACTIONS: dict[str, Literal["release", "cancel"]] = {"release": "release", "cancel": "cancel"}
DONE = {"release": "released: queued to be sent again", "cancel": "cancelled"}


class Decisions:
    """``/ui/notifications/{id}``, ``/ui/in-doubt`` and ``POST …/{id}/decide``."""

    def __init__(self, web: Web) -> None:
        self.web = web

    async def trace(self, request: Request, session: Session) -> Response:
        """The trace of one notification."""
        host = self.web.host
        try:
            ident = int(request.path_params["ident"])
        except ValueError:
            ident = -1
        found = await host.runner.call(host.reads.trace, ident)
        if found is None:
            return self.web.render("error.html", session, 404, message=f"No notification #{ident}.")
        n = found.notification
        versions = await host.runner.call(host.reads.rule_versions, n.rule_id)
        masker = Masker(full=session.operator)  # the one page that shows whole numbers
        shown = context(found, host.config(), versions.get(n.rule_version), masker)
        shown["buttons"] = shown_buttons(await host.buttons(n.channel, n.fields))
        done = request.query_params.get("done", "")
        return self.web.render("trace.html", session, done=DONE.get(done, ""), **shown)

    async def in_doubt(self, request: Request, session: Session) -> Response:
        """Notifications in doubt, with the operators' buttons."""
        host = self.web.host
        rows = await host.runner.call(host.reads.in_doubt, IN_DOUBT_LIMIT)
        done = request.query_params.get("done", "")
        return self.web.render(
            "in_doubt.html",
            session,
            rows=[line(n) for n in rows],
            done=DONE.get(done, ""),
            limit=IN_DOUBT_LIMIT,
        )

    async def decide(self, request: Request, session: Session, form: Mapping[str, str]) -> Response:
        """Release or cancel one notification; back to where the form was."""
        host = self.web.host
        action = ACTIONS.get(form.get("action", ""))
        try:
            ident = int(request.path_params["ident"])
        except ValueError:
            ident = -1
        if action is None:
            return self.web.render("error.html", session, 400, message="Release or cancel?")
        reason = form.get("reason", "").strip()[:500]
        decision = Decision(action, session.user, reason, host.clock.now())
        done = await host.runner.call(host.reads.decide, ident, decision)
        if not done:
            message = f"#{ident} cannot be {DONE[action].split(':')[0]} in its present state."
            return self.web.render("error.html", session, 409, message=message)
        log.info("console: %s %s #%d (%s)", session.user, action, ident, reason or "no reason")
        back = form.get("back", "")
        target = back if back == f"{PREFIX}/in-doubt" else f"{PREFIX}/notifications/{ident}"
        return RedirectResponse(f"{target}?done={action}", status_code=303)

    def routes(self) -> list[BaseRoute]:
        """The routes of this module."""
        page, action = self.web.page, self.web.action
        return [
            Route(f"{PREFIX}/notifications/{{ident}}", page(self.trace), methods=["GET"]),
            Route(
                f"{PREFIX}/notifications/{{ident}}/decide",
                action(self.decide, operator=True),
                methods=["POST"],
            ),
            Route(f"{PREFIX}/in-doubt", page(self.in_doubt), methods=["GET"]),
        ]
