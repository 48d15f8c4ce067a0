"""The notifications list: filters, keyset pages (newest first) and the export of a filtered
list as a spreadsheet file. Recipients are masked here for every role."""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from nextstep.engine.durations import parse_duration
from nextstep.engine.ledger.base import Notification
from nextstep.engine.ledger.reads import PHONE_TAIL, Cursor, Filters
from nextstep.engine.model import State
from nextstep.engine.runtime.console import export
from nextstep.engine.runtime.console.masking import MASKED
from nextstep.engine.runtime.console.sessions import Session
from nextstep.engine.runtime.console.web import PREFIX, Web

PAGE = 50
EXPORT_PAGE = 1000
EXPORT_MAX = 1_000_000  # rows of one export
STATES = tuple(s.value for s in State)


@dataclass(frozen=True, slots=True)
class Query:
    """A list's filters as asked (the form's values) and as understood."""

    form: Mapping[str, str]
    filters: Filters
    after: Cursor | None
    problems: tuple[str, ...] = ()


def _moment(text: str, now: float, field: str, problems: list[str]) -> float | None:
    """``24h`` (that long ago) or an ISO date/time (UTC when no offset is given)."""
    text = text.strip()
    if not text:
        return None
    try:
        return now - parse_duration(text)
    except (ValueError, TypeError):
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{field}: '{text}' is neither a duration (24h) nor a date (2026-06-20)")
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)).timestamp()


def parse_query(params: Mapping[str, str], now: float) -> Query:
    """The list's filters from query parameters; unusable ones are reported, not applied."""
    form = {k: params.get(k, "").strip() for k in FIELDS}
    problems: list[str] = []
    state = form["state"] or None
    if state is not None and state not in STATES:
        problems.append(f"state: '{state}' is not a state")
        state = None
    digits = re.sub(r"\D", "", form["phone"]) or None
    if digits is not None and len(digits) < PHONE_TAIL:
        problems.append(f"phone: give the last {PHONE_TAIL} digits or more")
        digits = None
    filters = Filters(
        rule_id=form["rule"] or None,
        state=state,
        since=_moment(form["since"], now, "since", problems),
        until=_moment(form["until"], now, "until", problems),
        phone_tail=digits,
        dedupe_key=form["key"] or None,
        provider_id=form["provider"] or None,
    )
    after = Cursor.parse(params.get("after", "")) if params.get("after") else None
    return Query(form, filters, after, tuple(problems))


FIELDS = ("rule", "state", "since", "until", "phone", "key", "provider")


def line(n: Notification) -> dict[str, Any]:
    """One notification as the list shows it (recipient masked)."""
    return {
        "id": n.id,
        "created_at": n.created_at,
        "rule": n.rule_id,
        "channel": n.channel,
        "recipient": MASKED.phone(n.recipient),
        "state": n.state.value,
        "attempts": n.attempts,
        "reason": MASKED.text(n.reason, n.recipient),
        "parent_id": n.parent_id,
    }


def _link(form: Mapping[str, str], **extra: str) -> str:
    values = {k: v for k, v in form.items() if v}
    values.update(extra)
    return urlencode(values)


class Listing:
    """``GET /ui/notifications`` and its export."""

    def __init__(self, web: Web) -> None:
        self.web = web

    async def page(self, request: Request, session: Session) -> Response:
        """One page of the filtered list."""
        host = self.web.host
        query = parse_query(request.query_params, host.clock.now())
        rows = await host.runner.call(host.reads.browse, query.filters, query.after, PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        following = None
        if more:
            last = rows[-1]
            following = _link(query.form, after=Cursor(last.created_at, last.id).text())
        return self.web.render(
            "notifications.html",
            session,
            form=query.form,
            problems=query.problems,
            rules=sorted(host.config().rules),
            states=STATES,
            rows=[line(n) for n in rows],
            following=following,
            first=_link(query.form) if query.after is not None else None,
            export=_link(query.form),
            export_label=export.LABEL,
        )

    async def download(self, request: Request, session: Session) -> Response:
        """Every notification the filters select, as a spreadsheet file (masked numbers)."""
        host = self.web.host
        query = parse_query(request.query_params, host.clock.now())

        async def lines() -> AsyncIterator[str]:
            yield export.row(export.HEADER)
            after, sent = query.after, 0
            while sent < EXPORT_MAX:
                found = await host.runner.call(host.reads.browse, query.filters, after, EXPORT_PAGE)
                for n in found:
                    yield export.row(export.values(n, MASKED))
                sent += len(found)
                if len(found) < EXPORT_PAGE:
                    return
                after = Cursor(found[-1].created_at, found[-1].id)

        disposition = f'attachment; filename="{export.FILE_NAME}"'
        return StreamingResponse(
            lines(),
            media_type=export.CONTENT_TYPE,
            headers={"Content-Disposition": disposition},
        )

    def routes(self) -> list[BaseRoute]:
        """The list's routes."""
        return [
            Route(f"{PREFIX}/notifications", self.web.page(self.page), methods=["GET"]),
            Route(f"{PREFIX}/notifications/export", self.web.page(self.download), methods=["GET"]),
        ]
