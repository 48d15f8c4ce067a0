"""Template categories, from the channel's ``GET templates``, for a send's TTL (:mod:`.ttl`).

A send whose rule has a TTL needs the template's category (its TTL range). The list is fetched
once and kept ``max_age`` seconds; a template missing from it, or a failed fetch, is tried
again after ``retry_after`` seconds at the earliest, so a busy channel asks ``templates`` a few
times an hour at most. Sends waiting for the same fetch share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from nextstep.adapters.channels.onemsg.templates import TemplateInfo
from nextstep.engine.clock import Clock
from nextstep.engine.errors import NextstepError

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[Sequence[TemplateInfo]]]


class TemplateCategories:
    """``(name, language)`` → the template (its category, ``UTILITY``…, and its buttons),
    fetched lazily and kept a while."""

    def __init__(
        self, fetch: Fetch, clock: Clock, *, max_age: float = 600.0, retry_after: float = 60.0
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._max_age = max_age
        self._retry_after = retry_after
        self._known: dict[tuple[str, str], TemplateInfo] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._lock = asyncio.Lock()

    async def category(self, name: str, language: str) -> str | None:
        """The category of template ``name`` in ``language``, or None when unknown."""
        template = await self.template(name, language)
        if template is None or not template.category:
            return None
        return template.category

    async def template(self, name: str, language: str) -> TemplateInfo | None:
        """Template ``name`` in ``language``, or None when unknown."""
        key = (name, language)
        if not self._due(key in self._known):
            return self._known.get(key)
        async with self._lock:
            if self._due(key in self._known):  # nobody fetched while this send waited
                await self._refresh()
        return self._known.get(key)

    def _due(self, known: bool) -> bool:
        now = self._clock.now()
        if self._fetched_at is not None and now - self._fetched_at < self._max_age and known:
            return False
        return self._tried_at is None or now - self._tried_at >= self._retry_after

    async def _refresh(self) -> None:
        self._tried_at = self._clock.now()
        try:
            templates = await self._fetch()
        except NextstepError as exc:
            log.warning("1msg: template categories not refreshed (%s); kept what was known", exc)
            return
        self._known = {t.key: t for t in templates}
        self._fetched_at = self._clock.now()
