"""Logging in and out of the console.

The login form carries its own CSRF token (a signed cookie beside a hidden field), since there
is no session yet; the password is checked with scrypt on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.runtime.console.passwords import dummy_hash, verify_password
from nextstep.engine.runtime.console.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    new_token,
    same_token,
)
from nextstep.engine.runtime.console.web import PREFIX, Web, read_form, secured

log = logging.getLogger(__name__)
LOGIN_TTL = 3600  # seconds a login form stays valid


def _next(target: str | None) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return f"{PREFIX}/overview"


def _login_page(web: Web, request: Request, error: str = "", status: int = 200) -> Response:
    token = new_token()
    response = web.render(
        "login.html",
        None,
        status,
        csrf=token,
        error=error,
        next=_next(request.query_params.get("next")),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        web.signer.sign(token),
        max_age=LOGIN_TTL,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=web.settings.secure_cookie,
    )
    return response


def routes(web: Web) -> list[BaseRoute]:
    """``GET/POST /ui/login`` and ``POST /ui/logout``."""

    async def login_form(request: Request) -> Response:
        if web.session(request) is not None:
            return secured(RedirectResponse(_next(request.query_params.get("next")), 303))
        return _login_page(web, request)

    async def login(request: Request) -> Response:
        form = await read_form(request) or {}
        expected = web.signer.unsign(request.cookies.get(LOGIN_COOKIE, ""))
        if not isinstance(expected, str) or not same_token(form.get("csrf"), expected):
            return secured(Response("missing or wrong CSRF token", status_code=403))
        name, password = form.get("name", ""), form.get("password", "")
        user = web.settings.user(name)
        hashed = user.password_hash if user is not None else dummy_hash()
        valid = await asyncio.to_thread(verify_password, password, hashed)
        if user is None or not valid:
            log.warning("console: failed login for %r", name[:64])
            return _login_page(web, request, "Wrong name or password.", 401)
        expires = web.host.clock.now() + web.settings.session_ttl
        _, cookie = web.signer.session(user.name, user.role, expires)
        response = secured(RedirectResponse(_next(form.get("next")), status_code=303))
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(web.settings.session_ttl),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=web.settings.secure_cookie,
        )
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
        log.info("console: %s logged in (%s)", user.name, user.role)
        return response

    async def logout(request: Request, session: object, form: object) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    return [
        Route(f"{PREFIX}/login", login_form, methods=["GET"]),
        Route(f"{PREFIX}/login", login, methods=["POST"]),
        Route(f"{PREFIX}/logout", web.action(logout), methods=["POST"]),
    ]
