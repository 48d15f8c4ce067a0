"""``nextstep run``: one process, one ``TaskGroup`` hosting the HTTP server, every trigger the
rules name (supervised, restarted with backoff), the dispatcher, the status poller, the
policy timers, the config watcher and the health snapshot.

Shutdown (SIGTERM/SIGINT) goes in the order that loses nothing: stop the triggers (no new
events; an HTTP event path answers 503), let the dispatcher finish the sends in flight (bounded
by its drain timeout) and write their results, then stop the server and the loops. A second
signal stops at once; what is then left marked as being sent becomes in doubt at the next
start (the rest of its lease is simply due again).

Start-up order (issue 15 defect 1): the SQLite ledger's lock first (one daemon per SQLite
ledger, :mod:`.ledgerlock`), then the HTTP port, and only then the ledger: this worker's row
in ``workers`` and the recovery of work whose owner is gone or whose lease ran out
(:mod:`.presence`), never another live worker's.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.routing import BaseRoute

from nextstep.engine.clock import Clock, SystemClock
from nextstep.engine.delivery.acksink import AckSink
from nextstep.engine.delivery.fallbacks import PolicyContext, RuleBook
from nextstep.engine.delivery.indoubt import run_resolver
from nextstep.engine.delivery.poller import PollSettings, run_poller
from nextstep.engine.delivery.timers import after_attempts, run_timers
from nextstep.engine.errors import NextstepError
from nextstep.engine.inbound.retention import prune_inbound, retention_of
from nextstep.engine.inbound.sink import InboundSink, webhook_recorder
from nextstep.engine.intake.emit import make_emit
from nextstep.engine.ledger import open_store
from nextstep.engine.ledger.base import Notification
from nextstep.engine.ledger.leases import Recovered, new_worker_id
from nextstep.engine.ledger.retention import Retention, run_retention
from nextstep.engine.ledger.runner import LedgerRunner
from nextstep.engine.optout.entries import Directory
from nextstep.engine.optout.routes import optout_routes, optout_token
from nextstep.engine.plugins import (
    Channel,
    Emit,
    LooksUpStatus,
    ReadsOneAtATime,
    ReceivesAcks,
    ReportsStatus,
    SearchesSent,
    ServesRoutes,
    ShowsButtons,
    TemplateButton,
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
from nextstep.engine.runtime.ledgerlock import EXIT_BUSY, LedgerBusy, exclusive_ledger
from nextstep.engine.runtime.logs import RedactingFilter, config_secrets
from nextstep.engine.runtime.presence import Presence, lease_of
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
from nextstep.engine.runtime.sources import OneAtATime
from nextstep.engine.runtime.supervisor import Backoff, Supervisor
from nextstep.engine.sending.attempt import NO_RETRY, RetryRules
from nextstep.engine.sending.dispatcher import Dispatcher
from nextstep.engine.sending.ratelimit import channel_limits

log = logging.getLogger(__name__)

BUTTONS_WITHIN = 3.0  # seconds a trace page waits for a channel's template buttons
REGISTRATION_LOCK = "ack webhook registration"  # one worker at a time registers
JOIN_MARGIN = 0.5  # seconds beyond a heartbeat a joining worker waits before sending


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
    worker_id: str = field(default_factory=new_worker_id)
    sources: set[str] = field(default_factory=set)  # trigger sources this worker reads now
    stopping: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once it serves
    channels: dict[str, Channel] = field(default_factory=dict)
    inbound: InboundSink | None = None  # keeps people's messages, when a channel receives them
    console: OpenConsole | None = None  # the web console at /ui, when configured
    _versions: dict[tuple[str, str], Rule] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down in order (see the module docstring)."""
        with exclusive_ledger(self.config.store):
            sock = listening_socket(self.config.server.host, self.config.server.port)
            try:
                await self._run(stop, sock)
            finally:
                sock.close()

    async def _run(self, stop: asyncio.Event, sock: socket.socket) -> None:
        self.runner = LedgerRunner(open_store(self.config.store))
        try:
            self.channels = self._open_channels()  # before the first heartbeat names them
            self.presence = Presence(
                self.runner,
                self.clock,
                self.worker_id,
                lease_of(self.config.settings),
                self._holds,
                self._recovered,
                self._share_rates,
            )
            await self.presence.beat()
            await self.presence.recover()
            async with asyncio.TaskGroup() as group:
                await self._serve(group, stop, sock)
        finally:
            for channel in self.channels.values():
                await channel.aclose()
            if self.console is not None:
                self.console.close()
            self.runner.close()

    async def _recovered(self, done: Recovered) -> None:
        """Rows of a gone worker: log them, resend the in-doubt ones whose rule says so."""
        if done.in_doubt:
            shown = ", ".join(f"#{i}" for i in done.in_doubt[:20])
            more = f" and {len(done.in_doubt) - 20} more" if len(done.in_doubt) > 20 else ""
            log.warning(
                "%s being sent when their worker stopped: now in doubt "
                "(nextstep status --in-doubt): %s%s",
                plural(len(done.in_doubt), "notification"),
                shown,
                more,
            )
            store = self.runner.store
            for nid in done.in_doubt:
                row = await self.runner.call(store.get, nid)
                if row is not None and self._retry_rules(row).in_doubt == "resend":
                    await self.runner.call(store.release, nid, self.clock.now())
        if done.requeued:
            log.info(
                "%s leased by a stopped worker and never sent: due again",
                plural(len(done.requeued), "notification"),
            )
        dispatcher = getattr(self, "dispatcher", None)
        if dispatcher is not None:
            dispatcher.wake()

    def _share_rates(self) -> None:
        """Each channel's rate is shared by the live workers sending on it."""
        dispatcher = getattr(self, "dispatcher", None)
        if dispatcher is not None:
            for name in self.channels:
                dispatcher.share(name, self.presence.live_on(name))

    def _holds(self) -> dict[str, Any]:
        """What this worker holds, for its row in ``workers``."""
        live = getattr(self, "live", None)
        triggers = sorted(live.instances) if live is not None else []
        return {
            "triggers": triggers,
            "sources": sorted(self.sources),
            "channels": sorted(self.channels),
        }

    async def _serve(
        self, group: asyncio.TaskGroup, stop: asyncio.Event, sock: socket.socket
    ) -> None:
        self._assemble(group)
        await self.reloader.start(self.config)
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
        await self.presence.stop()
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
            owner=self.worker_id,
            lease=self.presence.lease,
        )
        # Joining workers already sending: wait one heartbeat (and a margin) so that they
        # lower their share before this one sends (docs/scaling.md, "Rates across workers").
        for name in self.channels:
            live = self.presence.live_on(name)
            hold = self.presence.period + JOIN_MARGIN if live > 1 else 0.0
            self.dispatcher.share(name, live, hold=hold)

    def _loops(
        self, group: asyncio.TaskGroup
    ) -> tuple[asyncio.Task[None] | None, list[asyncio.Task[None]]]:
        loops = [group.create_task(run_timers(self.runner, self.clock, self.context))]
        loops.append(group.create_task(self.presence.run()))
        pollable = {n: c for n, c in self.channels.items() if isinstance(c, LooksUpStatus)}
        if pollable:
            status = self.config.status
            settings = PollSettings(poll_after=status.poll_after, poll_every=status.poll_every)
            poller = run_poller(self.runner, pollable, self.clock, self.context, settings)
            loops.append(group.create_task(poller))
        searchable = {n: c for n, c in self.channels.items() if isinstance(c, SearchesSent)}
        if searchable:  # in doubt settled from the provider's history (issue 15.11)
            loops.append(group.create_task(run_resolver(self.runner, searchable, self.clock)))
        health = keep_snapshot(self.runner, self.clock, self.health, self.options.health_every)
        loops.append(group.create_task(health))
        retention = retention_of(self.config.settings)
        loops.append(group.create_task(prune_inbound(self.runner, self.clock, retention)))
        kept = Retention.from_settings(self.config.settings)
        loops.append(group.create_task(run_retention(self.runner, self.clock, kept)))
        loops.append(group.create_task(self._register_acks()))
        watcher = None
        if self.options.watch:
            paths = partial(lambda live: watch_paths(live.config), self.live)
            watcher = group.create_task(self.reloader.watch(paths))
        return watcher, loops

    async def _register_acks(self) -> None:
        """Register the ack webhooks under the ledger's registration lock: workers starting
        together take turns, so each reads the list the one before it wrote (never two
        registrations racing on one list)."""
        server = self.config.server
        lock = self.runner.store.source_lock(REGISTRATION_LOCK)
        try:
            while not await asyncio.to_thread(lock.acquire):
                await asyncio.sleep(0.2)
            await register_acks(
                self.channels, server.public_url, self.listen, server.webhook_secret
            )
        finally:
            await asyncio.to_thread(lock.close)

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
        plugin = trigger_class(spec.kind)
        trigger = plugin(spec.config, context)
        if isinstance(plugin, ReadsOneAtATime):  # one worker at a time reads its source
            name = plugin.shared_source(spec.config)
            lock = self.runner.store.source_lock(name)
            return OneAtATime(trigger, lock, name, self.sources)
        return trigger

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

    def _retry_rules(self, notification: Notification) -> RetryRules:
        """:meth:`_policy`, also before the rules are live (recovery at start)."""
        if getattr(self, "live", None) is not None and self.live.applied:
            return self._policy(notification)
        rule = self.config.rules.get(notification.rule_id)
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
                self._buttons,
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
        circuits = {  # state, class and times; the reason (a provider text) is only logged
            name: {
                **lane.circuit.public(),
                "in_flight": lane.in_flight,
                "in_flight_target": lane.in_flight_target,
                "latency": lane.latency,
                "backlog": lane.backlog,
                "paused_until": lane.paused_until,
                **self._channel_detail(name),
            }
            for name, lane in self.dispatcher.status().items()
        }
        document = health_document(
            triggers=trigger_docs,
            circuits=circuits,
            reload=self.reloader.state.as_dict(),
            now=self.clock.now(),
            started_at=self.started_at,
            listen=self.listen,
            stopping=self.stopping,
            worker=self.worker_id,
            workers=self.presence.as_list(),
        )
        return document

    async def _buttons(self, name: str, fields: Mapping[str, Any]) -> Sequence[TemplateButton]:
        """The buttons channel ``name`` shows under a message (the console's trace); none when
        the channel has none or cannot tell within a few seconds: a page never waits longer."""
        channel = self.channels.get(name)
        if not isinstance(channel, ShowsButtons):
            return ()
        try:
            async with asyncio.timeout(BUTTONS_WITHIN):
                return await channel.buttons(fields)
        except Exception as exc:  # the trace shows the message without them
            log.warning("console: the buttons of channel %s are unknown (%s)", name, exc)
            return ()

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
    except LedgerBusy as exc:
        log.error("%s", exc)
        return EXIT_BUSY
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
