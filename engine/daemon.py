"""``nextstep run``: one process, one ``TaskGroup`` hosting the HTTP server, every trigger the
rules name (supervised, restarted with backoff), the dispatcher, the hookInfo poller, the
policy timers, the config watcher and the health snapshot.

Shutdown (SIGTERM/SIGINT) goes in the order that loses nothing: stop the triggers (no new
events; an HTTP event path answers 503), let the dispatcher finish the sends in flight (bounded
by its drain timeout) and write their results, then stop the server and the loops. A second
signal stops at once; what is then left in ``sending`` becomes in doubt at the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from engine.clock import Clock, SystemClock
from engine.config import Config, load_config, rule_from_definition
from engine.decide import NO_RETRY, RetryRules
from engine.dispatcher import Dispatcher
from engine.errors import NextstepError
from engine.fallbacks import PolicyContext, RuleBook, classify_unknown
from engine.ingest import make_emit
from engine.ledger import open_store
from engine.ledger.base import Notification
from engine.ledger.runner import LedgerRunner
from engine.logs import RedactingFilter, secrets_in
from engine.metrics import QUEUE_DEPTH
from engine.model import Event, Progress
from engine.plugins import Emit, EventResult, Trigger, TriggerContext, channels, triggers
from engine.poller import PollSettings, run_poller
from engine.ratelimit import ChannelLimits
from engine.registration import register_webhook, webhook_url
from engine.reload import LiveRules, Reloader, TriggerSpec, watch_paths
from engine.rules import Rule
from engine.server import HEALTH_EVERY, HEALTH_KEY, Server, create_app, health_document, make_server
from engine.supervisor import Backoff, Supervisor
from engine.timers import run_timers

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Knobs tests and the demo turn: trigger restart backoff, snapshot period, watching."""

    backoff: Backoff = Backoff()
    health_every: float = HEALTH_EVERY
    watch: bool = True


def config_secrets(config: Config) -> set[str]:
    """Every secret value the config holds (for the log filter)."""
    found = secrets_in({name: dict(c.settings) for name, c in config.channels.items()})
    found.update(s for s in (config.server.event_token, config.server.webhook_secret) if s)
    return found


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening socket (port 0: the system picks one); NextstepError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise NextstepError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; change server.listen"
        ) from exc
    sock.setblocking(False)
    return sock


@dataclass
class Daemon:
    """The running engine for one config; :meth:`run` until ``stop`` is set."""

    config: Config
    clock: Clock = field(default_factory=SystemClock)
    redacting: RedactingFilter | None = None
    options: DaemonOptions = DaemonOptions()
    listen: str = ""
    stopping: bool = False
    _versions: dict[tuple[str, str], Rule] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down in order (see the module docstring)."""
        store = open_store(self.config.store)
        self.runner = LedgerRunner(store)
        try:
            recovered = await self.runner.call(store.recover_interrupted, self.clock.now())
            if recovered:
                log.warning("%d notifications were being sent when nextstep last stopped: "
                            "now in doubt (nextstep status --in-doubt)", recovered)
            self.channels = {
                name: channels()[c.type](name, c.settings, clock=self.clock)
                for name, c in self.config.channels.items()
            }
            try:
                async with asyncio.TaskGroup() as group:
                    await self._serve(group, stop)
            finally:
                for channel in self.channels.values():
                    await channel.aclose()
        finally:
            self.runner.close()

    async def _serve(self, group: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        self.started_at = self.clock.now()
        self.supervisor = Supervisor(group, self.clock, self.options.backoff)
        self.live = LiveRules(self.supervisor, self._build_trigger, self._build_emit,
                              self._persist)
        self.reloader = Reloader(partial(load_config, self.config.path), self.live, self.clock,
                                 on_applied=self._applied)
        book = RuleBook(current=lambda: self.live.config.rules,
                        rebuild=lambda d: rule_from_definition(d, self.live.config))
        self.context = PolicyContext(rules=book, classify_ack=self._classifier(),
                                     default_country=self.config.default_country)
        self.dispatcher = Dispatcher(self.runner, self.channels, self._policy, self.clock,
                                     self._limits())
        await self.reloader.start(self.config)
        server_config = self.config.server
        sock = listening_socket(server_config.host, server_config.port)
        host, port = sock.getsockname()[:2]
        self.listen = f"{host}:{port}"
        server = make_server(create_app(self.health, self._routes()), host, port)
        served = group.create_task(server.serve(sockets=[sock]), name="server")
        dispatching = group.create_task(self.dispatcher.run(), name="dispatcher")
        loops = list(self._loops(group))
        log.info("nextstep running: %d rules, %d triggers, listening on http://%s",
                 len(self.config.rules), len(self.live.specs), self.listen)
        await stop.wait()
        await self._shutdown(server, served, dispatching, loops)
        sock.close()

    def _loops(self, group: asyncio.TaskGroup) -> Iterator[asyncio.Task[None]]:
        yield group.create_task(run_timers(self.runner, self.clock, self.context), name="timers")
        pollable = {n: c for n, c in self.channels.items() if hasattr(c, "get_hook_info")}
        if pollable:
            status = self.config.status
            settings = PollSettings(poll_after=status.poll_after, poll_every=status.poll_every)
            yield group.create_task(
                run_poller(self.runner, pollable, self.clock, self.context, settings),  # type: ignore[arg-type]
                name="poller",
            )
        if self.options.watch:
            paths = lambda: watch_paths(self.live.config)  # noqa: E731 (follows reloads)
            yield group.create_task(self.reloader.watch(paths), name="watcher")
        yield group.create_task(self._snapshots(), name="health")
        yield group.create_task(self._register(), name="registration")

    async def _shutdown(
        self, server: Server, served: asyncio.Task[None], dispatching: asyncio.Task[None],
        loops: Sequence[asyncio.Task[None]],
    ) -> None:
        self.stopping = True
        log.info("stopping: no new events; finishing the sends in flight")
        for task in loops:
            if task.get_name() == "watcher":
                task.cancel()
        await self.supervisor.stop_all()
        dispatching.cancel()
        await asyncio.gather(dispatching, return_exceptions=True)
        server.should_exit = True
        await served
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._write_snapshot(stopped=True)
        log.info("stopped")

    # -- building blocks ----------------------------------------------------------------------
    def _build_trigger(self, spec: TriggerSpec, emit: Emit) -> Trigger:
        context = TriggerContext(self.runner.store, self.clock, str(self.live_config.base_dir),
                                 spec.rule_ids)
        return triggers()[spec.kind](spec.config, context)

    @property
    def live_config(self) -> Config:
        """The config in force (the initial one until the first apply)."""
        try:
            return self.live.config
        except RuntimeError:
            return self.config

    def _build_emit(self, config: Config, spec: TriggerSpec) -> Emit:
        inner = make_emit(self.runner, [config.rules[i] for i in spec.rule_ids], self.clock,
                          config.default_country)
        wake = self.dispatcher.wake

        async def emit(events: Sequence[Event], progress: Sequence[Progress]) -> list[EventResult]:
            results = await inner(events, progress)
            if any(r.status == "queued" for result in results for r in result.results):
                wake()  # send now rather than at the dispatcher's next poll
            return results

        return emit

    async def _persist(self, config: Config) -> None:
        store = self.runner.store

        def save_all() -> None:
            for rule in config.rules.values():
                store.save_rule_version(rule.id, rule.version, rule.definition)

        await self.runner.call(save_all)

    def _applied(self, config: Config) -> None:
        for rule in config.rules.values():
            self._versions[(rule.id, rule.version)] = rule
        if self.redacting is not None:
            self.redacting.set_secrets(config_secrets(config))

    def _policy(self, notification: Notification) -> RetryRules:
        """The retry policy of the rule version that created ``notification``."""
        key = (notification.rule_id, notification.rule_version)
        rule = self._versions.get(key) or self.live.config.rules.get(notification.rule_id)
        return rule.policy.retry if rule is not None else NO_RETRY

    def _limits(self) -> dict[str, ChannelLimits]:
        return {n: ChannelLimits.from_settings(c.settings) for n, c in self.config.channels.items()}

    def _classifier(self) -> Any:
        for c in self.config.channels.values():
            classify = getattr(channels()[c.type], "classify_ack", None)
            if classify is not None:
                return classify
        return classify_unknown

    def _routes(self) -> list[Any]:
        routes: list[Any] = []
        server = self.config.server
        for kind in sorted({spec.kind for spec in self.live.specs.values()} | set(triggers())):
            make_routes = getattr(triggers()[kind], "routes", None)
            if make_routes is not None:
                routes.extend(make_routes(KindView(self.live, kind), server.event_token or ""))
        if server.webhook_secret:
            from engine.webhooks import webhook_routes

            routes.extend(webhook_routes(self.runner, server.webhook_secret, clock=self.clock,
                                         context=lambda: self.context))
        return routes

    # -- health -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The ``/healthz`` document (also written to the ledger for ``nextstep status``)."""
        trigger_docs = []
        for h in self.supervisor.health():
            doc = h.as_dict()
            status = getattr(self.live.instances.get(h.name), "status", None)
            if callable(status):
                doc["detail"] = {**doc["detail"], **status()}
            trigger_docs.append(doc)
        return health_document(
            triggers=trigger_docs,
            circuits={
                name: {**lane.circuit.as_dict(), "in_flight": lane.in_flight,
                       "backlog": lane.backlog, "paused_until": lane.paused_until}
                for name, lane in self.dispatcher.status().items()
            },
            reload=self.reloader.state.as_dict(),
            now=self.clock.now(),
            started_at=self.started_at,
            listen=self.listen,
            stopping=self.stopping,
        )

    async def _snapshots(self) -> None:
        while True:
            try:
                await self._write_snapshot()
            except NextstepError as exc:
                log.warning("health snapshot not written: %s", exc)
            await self.clock.sleep(self.options.health_every)

    async def _write_snapshot(self, *, stopped: bool = False) -> None:
        doc = self.health()
        if stopped:
            doc["status"] = "stopped"
        store = self.runner.store
        depth = await self.runner.call(store.queue_depth, self.clock.now())
        QUEUE_DEPTH.set(depth)
        doc["queue_depth"] = depth
        await self.runner.call(store.enqueue, [], [Progress(HEALTH_KEY, json.dumps(doc))])

    async def _register(self) -> None:
        secret = self.config.server.webhook_secret
        for name, channel in self.channels.items():
            if not secret or not hasattr(channel, "set_webhooks"):
                continue
            base = self._public_base(self.config.channels[name].settings)
            if base is None:
                log.info("channel %s: acks need %s registered with 1MSG (until then statuses "
                         "come from hookInfo polling)", name, "/webhooks/1msg/<secret>")
                continue
            try:
                await register_webhook(channel, webhook_url(base, secret))  # type: ignore[arg-type]
            except NextstepError as exc:
                log.error("channel %s: webhook not registered: %s", name, exc)

    def _public_base(self, settings: Mapping[str, Any]) -> str | None:
        server_settings = self.config.settings.get("server")
        if isinstance(server_settings, Mapping) and server_settings.get("public_url"):
            return str(server_settings["public_url"])
        host = urlsplit(str(settings.get("base_url", ""))).hostname or ""
        return f"http://{self.listen}" if host in LOOPBACK else None


class KindView(Mapping[str, Any]):
    """The running trigger objects of one kind by source key, read on every request."""

    def __init__(self, live: LiveRules, kind: str) -> None:
        self._live = live
        self._kind = kind

    def _keys(self) -> list[str]:
        return [k for k, s in self._live.specs.items() if s.kind == self._kind]

    def __getitem__(self, key: str) -> Any:
        spec = self._live.specs.get(key)
        if spec is None or spec.kind != self._kind or key not in self._live.instances:
            raise KeyError(key)
        return self._live.instances[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


async def run_daemon(
    config: Config,
    *,
    redacting: RedactingFilter | None = None,
    options: DaemonOptions = DaemonOptions(),
    clock: Clock | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 when a part failed for good."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set() and main is not None:
            log.warning("second %s: stopping at once", sig.name)
            main.cancel()
            return
        log.info("%s received", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    daemon = Daemon(config, clock or SystemClock(), redacting, options)
    try:
        await daemon.run(stop)
    except asyncio.CancelledError:
        log.warning("stopped before the sends in flight finished: they are in doubt now")
        return 1
    except BaseExceptionGroup as group:
        _log_failures(group)
        return 1
    except NextstepError as exc:
        log.error("%s", exc)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def _log_failures(group: BaseExceptionGroup[BaseException]) -> None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            _log_failures(exc)
        elif isinstance(exc, NextstepError):
            log.error("%s", exc)
        elif not isinstance(exc, asyncio.CancelledError):
            log.error("nextstep stopped on an error", exc_info=exc)
