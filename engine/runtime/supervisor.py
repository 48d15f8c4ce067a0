"""Keep triggers running: a trigger that fails is logged, shown in health and restarted with
backoff, while every other task keeps running.

Supervised tasks are children of the daemon's one ``TaskGroup``; stopping one cancels just that
child (a cancelled child does not cancel its group).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from nextstep.engine.backoff import capped_doubling
from nextstep.engine.clock import Clock
from nextstep.engine.metrics import TRIGGER_UP

log = logging.getLogger(__name__)

TaskState = Literal["running", "backoff", "stopped"]


def restart_delay(failures: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before restart number ``failures`` (1, 2…): doubling from ``base``,
    capped at ``cap``."""
    return capped_doubling(failures, base, cap)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How supervised tasks are restarted: the delay curve and when a run counts as healthy."""

    base: float = 0.5
    cap: float = 30.0
    healthy_after: float = 30.0  # a run this long resets the failure count


@dataclass(slots=True)
class TaskHealth:
    """What health and status show for one supervised task."""

    name: str
    kind: str
    state: TaskState = "running"
    restarts: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    started_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return asdict(self)


class Supervisor:
    """Starts, restarts with backoff, and stops named tasks inside a ``TaskGroup``."""

    def __init__(
        self, group: asyncio.TaskGroup, clock: Clock, backoff: Backoff = Backoff()
    ) -> None:
        self._group = group
        self._clock = clock
        self._backoff = backoff
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._health: dict[str, TaskHealth] = {}

    @property
    def names(self) -> list[str]:
        """Names of the tasks currently supervised."""
        return list(self._tasks)

    def health(self) -> list[TaskHealth]:
        """One entry per supervised task, in start order."""
        return [self._health[name] for name in self._tasks]

    def start(
        self,
        name: str,
        kind: str,
        factory: Callable[[], Awaitable[None]],
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Run ``factory()`` until stopped; when it raises or returns, call it again after a
        backoff. ``factory`` builds a fresh object each time, so a broken one is not reused."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} is already running")
        self._health[name] = TaskHealth(name, kind, detail=dict(detail or {}))
        self._tasks[name] = self._group.create_task(self._keep(name, factory), name=name)

    async def stop(self, name: str) -> None:
        """Cancel one task and wait until it has finished."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        health = self._health.pop(name)
        health.state = "stopped"
        TRIGGER_UP.labels(name).set(0)

    async def stop_all(self) -> None:
        """Stop every supervised task (shutdown)."""
        await asyncio.gather(*(self.stop(name) for name in list(self._tasks)))

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        health = self._health[name]
        failures = 0
        while True:
            health.state = "running"
            health.started_at = started = self._clock.now()
            TRIGGER_UP.labels(name).set(1)
            try:
                await factory()
                reason = "returned without being stopped"
                log.warning("trigger %s %s; restarting it", name, reason)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.exception("trigger %s failed", name)
            TRIGGER_UP.labels(name).set(0)
            if self._clock.now() - started >= self._backoff.healthy_after:
                failures = 0
            failures += 1
            delay = restart_delay(failures, base=self._backoff.base, cap=self._backoff.cap)
            health.state = "backoff"
            health.restarts += 1
            health.last_error = reason
            health.last_error_at = self._clock.now()
            log.info("trigger %s restarts in %.1fs (restart %d)", name, delay, health.restarts)
            await self._clock.sleep(delay)
