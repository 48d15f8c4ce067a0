"""What every console page shares: the templates, the security headers, logins and CSRF.

Pages are Starlette handlers wrapped by :meth:`Web.page` (login required) or
:meth:`Web.action` (login, a POST and its CSRF token required). Answers carry a strict
Content-Security-Policy: scripts and styles come from the console's own static files only.
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from nextstep.engine.rules.console_config import ConsoleConfig
from nextstep.engine.runtime.console.host import ConsoleHost
from nextstep.engine.runtime.console.sessions import COOKIE, Session, Signer, same_token

PREFIX = "/ui"
MAX_FORM = 256 * 1024  # bytes of a form (the playground's event is the largest)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TEMPLATES = Path(__file__).parent / "templates"

Handler = Callable[[Request, Session], Awaitable[Response]]
FormHandler = Callable[[Request, Session, Mapping[str, str]], Awaitable[Response]]


def when(at: float | None) -> str:
    """A moment as the pages show it (UTC, to the second)."""
    if at is None:
        return "–"
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def took(seconds: float | None) -> str:
    """A duration as the pages show it: 850 ms, 12.5 s, 3.2 min, 1.5 h."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def environment() -> jinja2.Environment:
    """The console's templates, autoescaped."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["took"] = took
    env.globals["prefix"] = PREFIX
    return env


def secured(response: Response) -> Response:
    """``response`` with the console's security headers."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def to_login(request: Request) -> Response:
    """303 to the login page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = urllib.parse.urlencode({"next": target})
    return secured(RedirectResponse(f"{PREFIX}/login?{query}", status_code=303))


async def read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form's fields (the last value of each); None when too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


@dataclass
class Web:
    """Templates, sessions and the host, shared by every page."""

    host: ConsoleHost
    settings: ConsoleConfig
    signer: Signer
    env: jinja2.Environment

    def session(self, request: Request) -> Session | None:
        """The request's session, None without a valid one (or for a user no longer listed
        with that role)."""
        found = self.signer.read_session(request.cookies.get(COOKIE), self.host.clock.now())
        if found is None:
            return None
        user = self.settings.user(found.user)
        return found if user is not None and user.role == found.role else None

    def render(
        self, name: str, session: Session | None, status: int = 200, **context: Any
    ) -> Response:
        """A page from template ``name``, with the security headers."""
        html = self.env.get_template(name).render(session=session, **context)
        return secured(HTMLResponse(html, status_code=status))

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A GET page: logged-in users only (others go to the login page)."""

        async def endpoint(request: Request) -> Response:
            session = self.session(request)
            if session is None:
                return to_login(request)
            return secured(await handler(request, session))

        return endpoint

    def action(
        self, handler: FormHandler, *, operator: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """A POST: a session and the session's CSRF token in the form, else 403 (no session
        at all: the login page); ``operator`` actions are refused to viewers."""

        async def endpoint(request: Request) -> Response:
            session = self.session(request)
            form = await read_form(request)
            if form is None:
                return secured(Response("form too large", status_code=413))
            if session is None and not form.get("csrf"):
                return to_login(request)
            if session is None or not same_token(form.get("csrf"), session.csrf):
                return secured(Response("missing or wrong CSRF token", status_code=403))
            if operator and not session.operator:
                return self.render("error.html", session, 403, message="Operators only.")
            return secured(await handler(request, session, form))

        return endpoint
