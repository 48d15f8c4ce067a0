"""``nextstep run``: one process, one ``TaskGroup`` hosting the HTTP server, every trigger the
rules name (supervised, restarted with backoff), the dispatcher, the status poller, the
policy timers, the config watcher and the health snapshot.

Shutdown (SIGTERM/SIGINT) goes in the order that loses nothing: stop the triggers (no new
events; an HTTP event path answers 503), let the dispatcher finish the sends in flight (bounded
by its drain timeout) and write their results, then stop the server and the loops. A second
signal stops at once; what is then left in ``sending`` becomes in doubt at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.routing import BaseRoute

from nextstep.engine.clock import Clock, SystemClock
from nextstep.engine.delivery.acksink import AckSink
from nextstep.engine.delivery.fallbacks import PolicyContext, RuleBook
from nextstep.engine.delivery.poller import PollSettings, run_poller
from nextstep.engine.delivery.timers import after_attempts, run_timers
from nextstep.engine.errors import NextstepError
from nextstep.engine.inbound.retention import prune_inbound, retention_of
from nextstep.engine.inbound.sink import InboundSink, webhook_recorder
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Notification
from nextstep.engine.ledger.retention import Retention, run_retention
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.optout.entries import Directory
from nextstep.engine.optout.routes import optout_routes, optout_token
from nextstep.engine.plugins import (
    Channel,
    Emit,
    LooksUpStatus,
    ReceivesAcks,
    ReportsStatus,
    ServesRoutes,
    Trigger,
    TriggerContext,
    channel_class,
    installed,
    trigger_class,
)
from nextstep.engine.plugins.registry import TRIGGERS
from nextstep.engine.plural import plural
from nextstep.engine.rules.config import Config, load_config, rule_from_definition
from nextstep.engine.rules.rule import Rule
from nextstep.engine.runtime.console.app import OpenConsole, open_console
from nextstep.engine.runtime.gctune import tuned_gc
from nextstep.engine.runtime.logs import RedactingFilter, config_secrets
from nextstep.engine.runtime.reload import LiveRules, Reloader, TriggerSpec, watch_paths
from nextstep.engine.runtime.server import (
    HEALTH_EVERY,
    create_app,
    health_document,
    keep_snapshot,
    listening_socket,
    make_server,
    register_acks,
    write_snapshot,
)
from nextstep.engine.runtime.supervisor import Backoff, Supervisor
from nextstep.engine.sending.attempt import NO_RETRY, RetryRules
from nextstep.engine.sending.dispatcher import Dispatcher
from nextstep.engine.sending.ratelimit import channel_limits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Knobs tests and the demo turn: trigger restart backoff, snapshot period, watching."""

    backoff: Backoff = Backoff()
    health_every: float = HEALTH_EVERY
    watch: bool = True


@dataclass
class Daemon:
    """The running engine for one config; :meth:`run` until ``stop`` is set."""

    config: Config
    clock: Clock = field(default_factory=SystemClock)
    redacting: RedactingFilter | None = None
    options: DaemonOptions = DaemonOptions()
    listen: str = ""
    stopping: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once it serves
    channels: dict[str, Channel] = field(default_factory=dict)
    inbound: InboundSink | None = None  # keeps people's messages, when a channel receives them
    console: OpenConsole | None = None  # the web console at /ui, when configured
    _versions: dict[tuple[str, str], Rule] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down in order (see the module docstring)."""
        self.runner = LedgerRunner(open_store(self.config.store))
        try:
            store = self.runner.store
            recovered = await self.runner.call(store.recover_interrupted, self.clock.now())
            if recovered:
                log.warning(
                    "%d notifications were being sent when nextstep last stopped: "
                    "now in doubt (nextstep status --in-doubt)",
                    recovered,
                )
            self.channels = self._open_channels()
            try:
                async with asyncio.TaskGroup() as group:
                    await self._serve(group, stop)
            finally:
                for channel in self.channels.values():
                    await channel.aclose()
        finally:
            if self.console is not None:
                self.console.close()
            self.runner.close()

    async def _serve(self, group: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        self._assemble(group)
        await self.reloader.start(self.config)
        sock = listening_socket(self.config.server.host, self.config.server.port)
        host, port = sock.getsockname()[:2]
        self.listen = f"{host}:{port}"
        server = make_server(create_app(self.health, self._routes()), host, port)
        served = group.create_task(server.serve(sockets=[sock]), name="server")
        dispatching = group.create_task(self.dispatcher.run(), name="dispatcher")
        watcher, loops = self._loops(group)
        log.info(
            "nextstep running: %s, %s, listening on http://%s",
            plural(len(self.config.rules), "rule"),
            plural(len(self.live.specs), "trigger"),
            self.listen,
        )
        self.ready.set()
        await stop.wait()
        self.stopping = True
        log.info("stopping: no new events; finishing the sends in flight")
        if watcher is not None:
            await _cancelled(watcher)
        await self.supervisor.stop_all()  # no new events from here on
        await _cancelled(dispatching)  # it drains: sends in flight finish, results are written
        server.should_exit = True
        await served
        sock.close()
        if self.inbound is not None:
            await self.inbound.aclose()  # confirmations under way
        for task in loops:
            await _cancelled(task)
        await write_snapshot(self.runner, self.clock.now(), {**self.health(), "status": "stopped"})
        log.info("stopped")

    def _assemble(self, group: asyncio.TaskGroup) -> None:
        self.started_at = self.clock.now()
        self.supervisor = Supervisor(group, self.clock, self.options.backoff)
        self.live = LiveRules(self.supervisor, self._build_trigger, self._build_emit, self._persist)
        self.reloader = Reloader(
            partial(load_config, self.config.path), self.live, self.clock, on_applied=self._applied
        )
        book = RuleBook(
            current=lambda: self.live.config.rules,
            rebuild=lambda d: rule_from_definition(d, self.live.config),
        )
        self.context = PolicyContext(rules=book, default_country=self.config.default_country)
        channels = self.config.channels
        limits = {n: channel_limits(channels[n].type, channels[n].settings) for n in self.channels}
        self.dispatcher = Dispatcher(
            self.runner,
            self.channels,
            self._policy,
            self.clock,
            limits,
            after_write=after_attempts(self.context),  # fallbacks at once, not at the next tick
        )

    def _loops(
        self, group: asyncio.TaskGroup
    ) -> tuple[asyncio.Task[None] | None, list[asyncio.Task[None]]]:
        loops = [group.create_task(run_timers(self.runner, self.clock, self.context))]
        pollable = {n: c for n, c in self.channels.items() if isinstance(c, LooksUpStatus)}
        if pollable:
            status = self.config.status
            settings = PollSettings(poll_after=status.poll_after, poll_every=status.poll_every)
            poller = run_poller(self.runner, pollable, self.clock, self.context, settings)
            loops.append(group.create_task(poller))
        health = keep_snapshot(self.runner, self.clock, self.health, self.options.health_every)
        loops.append(group.create_task(health))
        retention = retention_of(self.config.settings)
        loops.append(group.create_task(prune_inbound(self.runner, self.clock, retention)))
        kept = Retention.from_settings(self.config.settings)
        loops.append(group.create_task(run_retention(self.runner, self.clock, kept)))
        server = self.config.server
        registering = register_acks(
            self.channels, server.public_url, self.listen, server.webhook_secret
        )
        loops.append(group.create_task(registering))
        watcher = None
        if self.options.watch:
            paths = partial(lambda live: watch_paths(live.config), self.live)
            watcher = group.create_task(self.reloader.watch(paths))
        return watcher, loops

    # -- what the rule set is built with ----------------------------------------------------
    def _open_channels(self) -> dict[str, Channel]:
        opened: dict[str, Channel] = {}
        for name, c in self.config.channels.items():
            try:
                opened[name] = channel_class(c.type)(name, c.settings, clock=self.clock)
            except NextstepError as exc:
                # One channel that cannot start must not stop the others.
                log.error(
                    "channel %s (type %s) is not available: %s; its notifications stay "
                    "queued until it is",
                    name,
                    c.type,
                    exc,
                )
        return opened

    def _build_trigger(self, spec: TriggerSpec, emit: Emit) -> Trigger:
        base_dir = str(self.live.config.base_dir if self.live.applied else self.config.base_dir)
        context = TriggerContext(
            self.runner.store,
            self.clock,
            base_dir,
            spec.rule_ids,
            extra={"max_body": self.config.server.max_body},
        )
        return trigger_class(spec.kind)(spec.config, context)

    def _build_emit(self, config: Config, spec: TriggerSpec) -> Emit:
        # on_queued: send at once rather than at the dispatcher's next poll.
        rules = [config.rules[rule_id] for rule_id in spec.rule_ids]
        return make_emit(
            self.runner, rules, self.clock, config.default_country, on_queued=self.dispatcher.wake
        )

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

    def _routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        server = self.config.server
        plugins, _ = installed(TRIGGERS)  # an unavailable one is logged by the registry
        for kind, plugin in sorted(plugins.items()):
            if isinstance(plugin, ServesRoutes):
                routes.extend(plugin.routes(self.live.of_kind(kind), server.event_token or ""))
        if server.webhook_secret:
            routes.extend(self._ack_routes(server.webhook_secret, server.max_body))
        directory = Directory(self.config.default_country, tuple(self.config.channels))
        token = optout_token(self.config.settings)
        routes.extend(optout_routes(self.runner, self.clock.now, directory, token))
        if server.console is not None:
            self.console = open_console(
                server.console,
                self.runner,
                self.clock,
                lambda: self.live.config,
                self.health,
                lambda: self.reloader.state.as_dict(),
            )
            routes.extend(self.console.routes if self.console is not None else [])
        return routes

    def _ack_routes(self, secret: str, max_body: int) -> list[BaseRoute]:
        """The ack routes of every channel type in use that receives acks, once per type."""
        receivers = {}
        for channel in self.config.channels.values():
            plugin = channel_class(channel.type)
            if isinstance(plugin, ReceivesAcks):
                receivers[channel.type] = plugin
        if not receivers:
            return []
        sink = AckSink(self.runner, self.clock, lambda: self.context)
        recorder, self.inbound = webhook_recorder(
            sink, self.runner, self.clock, self.config.channels, self.channels
        )
        return [
            route
            for _, plugin in sorted(receivers.items())
            for route in plugin.ack_routes(recorder, secret, max_body)
        ]

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` document (also written to the ledger for ``nextstep status``)."""
        trigger_docs = []
        for h in self.supervisor.health():
            doc = h.as_dict()
            trigger = self.live.instances.get(h.name)
            if isinstance(trigger, ReportsStatus):
                doc["detail"] = {**doc["detail"], **trigger.status()}
            trigger_docs.append(doc)
        circuits = {
            name: {
                **lane.circuit.as_dict(),
                "in_flight": lane.in_flight,
                "backlog": lane.backlog,
                "paused_until": lane.paused_until,
                **self._channel_detail(name),
            }
            for name, lane in self.dispatcher.status().items()
        }
        return health_document(
            triggers=trigger_docs,
            circuits=circuits,
            reload=self.reloader.state.as_dict(),
            now=self.clock.now(),
            started_at=self.started_at,
            listen=self.listen,
            stopping=self.stopping,
        )

    def _channel_detail(self, name: str) -> dict[str, Any]:
        """``{"detail": …}`` for a channel that reports its status, else nothing."""
        channel = self.channels.get(name)
        return {"detail": channel.status()} if isinstance(channel, ReportsStatus) else {}


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


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
    try:
        with tuned_gc():  # start-up is over: keep the collector off the hot path (gctune.py)
            await Daemon(config, clock or SystemClock(), redacting, options).run(stop)
    except asyncio.CancelledError:
        log.warning("stopped before the sends in flight finished: they are in doubt now")
        return 1
    except (BaseExceptionGroup, NextstepError) as exc:
        _log_failures([exc])
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def _log_failures(errors: Iterator[BaseException] | list[BaseException]) -> None:
    for exc in errors:
        if isinstance(exc, BaseExceptionGroup):
            _log_failures(list(exc.exceptions))
        elif isinstance(exc, NextstepError):
            log.error("%s", exc)
        elif not isinstance(exc, asyncio.CancelledError):
            log.error("nextstep stopped on an error", exc_info=exc)
