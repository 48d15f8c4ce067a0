"""Hot reload: watch the config and rule files, load the new set off to the side, and swap it in
whole only if it is entirely valid.

The rule set in force lives in :class:`LiveRules`. Triggers never hold rules: each one is given
an ``emit`` that looks up its source's current emit at call time, so a rule edit takes effect
at the swap without touching its trigger. Only triggers whose own config changed (kind, config,
rules on the source) are stopped and started again; the others keep running. Notifications
already in the ledger keep the rule version they were written with (rule versions are saved
before the swap).
"""

from __future__ import annotations

import asyncio
import glob
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchfiles import Change, awatch

from nextstep.engine.clock import Clock
from nextstep.engine.errors import ConfigError, NextstepError, Problem
from nextstep.engine.metrics import RELOAD_OK, RELOAD_TIME
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import Emit, EventResult, Trigger
from nextstep.engine.plural import plural
from nextstep.engine.rules.rule import canonical_json
from nextstep.engine.runtime.supervisor import Supervisor

if TYPE_CHECKING:
    from nextstep.engine.rules.config import Config
    from nextstep.engine.rules.rule import Rule

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yaml", ".yml")
# While nothing changes the watcher wakes this often (ms) to compare the files with what was
# loaded: a save before the watcher was armed (issue 15.12: within ~0.3 s of the start) or
# an event the OS dropped is seen at the next tick instead of never.
RECHECK_MS = 1000

Fingerprint = frozenset[tuple[str, int, int]]


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One trigger to run: the source it reads and the rules that share it. Two specs are
    equal when the trigger would be built the same way (what a reload compares)."""

    source_key: str
    kind: str
    config: Mapping[str, Any] = field(compare=False)
    rule_ids: tuple[str, ...]
    configs: str = ""  # every sharing rule's trigger config, canonical JSON: any edit counts


def trigger_specs(rules: Iterable[Rule]) -> dict[str, TriggerSpec]:
    """One spec per source key; rules with the same source key share one trigger."""
    by_source: dict[str, list[Rule]] = {}
    for rule in sorted(rules, key=lambda r: r.id):
        by_source.setdefault(rule.source_key, []).append(rule)
    return {
        key: TriggerSpec(
            key,
            group[0].trigger_kind,
            group[0].trigger_config,
            tuple(r.id for r in group),
            canonical_json([r.trigger_config for r in group]),
        )
        for key, group in by_source.items()
    }


@dataclass(frozen=True, slots=True)
class Diff:
    """Names added, removed, changed and unchanged between two keyed sets."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def summary(self) -> str:
        """``added a; changed b`` (empty parts left out), or ``unchanged``."""
        parts = [
            f"{name} {', '.join(keys)}"
            for name, keys in (
                ("added", self.added),
                ("changed", self.changed),
                ("removed", self.removed),
            )
            if keys
        ]
        return "; ".join(parts) or "unchanged"


def diff(old: Mapping[str, object], new: Mapping[str, object]) -> Diff:
    """Compare two keyed sets by equality of their values."""
    return Diff(
        added=tuple(sorted(new.keys() - old.keys())),
        removed=tuple(sorted(old.keys() - new.keys())),
        changed=tuple(sorted(k for k in new.keys() & old.keys() if new[k] != old[k])),
        unchanged=tuple(sorted(k for k in new.keys() & old.keys() if new[k] == old[k])),
    )


def rule_versions(config: Config) -> dict[str, str]:
    """Rule id to rule version, what a rule diff compares."""
    return {rule_id: rule.version for rule_id, rule in config.rules.items()}


@dataclass(slots=True)
class ReloadReport:
    """What one successful apply did."""

    rules: Diff
    triggers: Diff


BuildTrigger = Callable[[TriggerSpec, Emit], Trigger]
BuildEmit = Callable[["Config", TriggerSpec], Emit]
Persist = Callable[["Config"], Awaitable[None]]


class LiveRules:
    """The rule set in force and the triggers serving it, replaced only as a whole."""

    def __init__(
        self,
        supervisor: Supervisor,
        build_trigger: BuildTrigger,
        build_emit: BuildEmit,
        persist: Persist,
    ) -> None:
        self._supervisor = supervisor
        self._build_trigger = build_trigger
        self._build_emit = build_emit
        self._persist = persist
        self._config: Config | None = None
        self._specs: dict[str, TriggerSpec] = {}
        self._emits: dict[str, Emit] = {}
        self.instances: dict[str, Trigger] = {}  # the running object per source (HTTP routing)

    @property
    def applied(self) -> bool:
        """True once a rule set is in force."""
        return self._config is not None

    @property
    def config(self) -> Config:
        """The config in force (after the first :meth:`apply`)."""
        if self._config is None:
            raise RuntimeError("no rule set has been applied yet")
        return self._config

    @property
    def specs(self) -> Mapping[str, TriggerSpec]:
        """The triggers in force, by source key."""
        return self._specs

    def of_kind(self, kind: str) -> Mapping[str, Trigger]:
        """A live view of the running triggers of one kind by source key (what an HTTP
        route looks its trigger up in, on every request)."""
        return _KindView(self, kind)

    def emit_for(self, source_key: str) -> Emit:
        """An emit that always uses the source's rules in force at the time of the call."""

        async def emit(events: Sequence[Event], progress: Sequence[Progress]) -> list[EventResult]:
            current = self._emits.get(source_key)
            if current is None:
                raise NextstepError(f"source {source_key} is no longer in the rules")
            return await current(events, progress)

        return emit

    async def apply(self, config: Config) -> ReloadReport:
        """Build everything for ``config`` first (any error leaves the old set untouched),
        then stop the triggers that went away or changed, swap, and start the new ones."""
        specs = trigger_specs(config.rules.values())
        triggers = diff(self._specs, specs)
        rules = diff(rule_versions(self._config) if self._config else {}, rule_versions(config))
        emits = {key: self._build_emit(config, spec) for key, spec in specs.items()}
        fresh = {
            key: self._checked_build(config, specs[key])
            for key in triggers.added + triggers.changed
        }
        await self._persist(config)
        await asyncio.gather(
            *(self._supervisor.stop(k) for k in triggers.removed + triggers.changed)
        )
        for key in triggers.removed:
            self.instances.pop(key, None)
        self._config, self._specs, self._emits = config, specs, emits
        for key, trigger in fresh.items():
            self._start(specs[key], trigger)
        return ReloadReport(rules, triggers)

    def _checked_build(self, config: Config, spec: TriggerSpec) -> Trigger:
        """Build a trigger; its config problems are reported at the rule that declares it."""
        try:
            return self._build_trigger(spec, self.emit_for(spec.source_key))
        except ConfigError as exc:
            rule = config.rules[spec.rule_ids[0]]
            raise ConfigError(
                [
                    Problem(str(rule.file), rule.line, p.col or 1, rule.id, p.path, p.message)
                    for p in exc.problems
                ]
            ) from exc

    def _start(self, spec: TriggerSpec, first: Trigger) -> None:
        pending = [first]  # the first run uses the object built (and checked) before the swap
        emit = self.emit_for(spec.source_key)

        async def run() -> None:
            trigger = pending.pop() if pending else self._build_trigger(spec, emit)
            self.instances[spec.source_key] = trigger
            await trigger.run(emit)

        self._supervisor.start(spec.source_key, spec.kind, run, {"rules": list(spec.rule_ids)})


class _KindView(Mapping[str, Trigger]):
    """The running trigger objects of one kind by source key, read on every request."""

    def __init__(self, live: LiveRules, kind: str) -> None:
        self._live = live
        self._kind = kind

    def _keys(self) -> list[str]:
        return [k for k, s in self._live.specs.items() if s.kind == self._kind]

    def __getitem__(self, key: str) -> Trigger:
        spec = self._live.specs.get(key)
        if spec is None or spec.kind != self._kind or key not in self._live.instances:
            raise KeyError(key)
        return self._live.instances[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """Settings a reload cannot apply to a running daemon (they need a restart)."""
    pairs = {
        "store": (old.store, new.store),
        "server": (old.server, new.server),
        "channels": (old.channels, new.channels),
    }
    return [name for name, (before, after) in pairs.items() if before != after]


def missing_channels(running: Config, new: Config) -> list[Problem]:
    """Rules that name a channel the running daemon does not have (added without a restart)."""
    message = "channel {!r} is not running; restart nextstep to add channels"
    return [
        Problem(str(rule.file), rule.line, 1, rule.id, "send.channel", message.format(channel))
        for rule in new.rules.values()
        for channel in sorted(
            {rule.send.channel, *(step.send.channel for step in rule.policy.fallback)}
        )
        if channel not in running.channels
    ]


@dataclass(slots=True)
class ReloadState:
    """The outcome of the last reload, for /healthz, status and the log."""

    ok: bool = True
    at: float | None = None
    last_success_at: float | None = None
    problems: list[str] = field(default_factory=list)
    rules: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return asdict(self)


class Reloader:
    """Loads the config again when its files change and applies it if entirely valid."""

    def __init__(
        self,
        load: Callable[[], Config],
        live: LiveRules,
        clock: Clock,
        on_applied: Callable[[Config], None] = lambda config: None,
    ) -> None:
        self._load = load
        self._live = live
        self._clock = clock
        self._on_applied = on_applied
        self.state = ReloadState()
        self._lock = asyncio.Lock()
        self._running: Config | None = None
        self._seen: Fingerprint | None = None  # the files as they were before the last load

    async def start(self, config: Config) -> ReloadReport:
        """Apply the first, already validated config (startup)."""
        # Files saved after the config was read (while the daemon opened the ledger…) count
        # as unseen: the watcher's first wake-up reloads them.
        after = config.loaded_at * 1e9 if config.loaded_at else float("inf")
        self._seen = frozenset(f for f in fingerprint(config) if f[1] < after)
        report = await self._live.apply(config)
        self._running = config
        self._succeeded(config)
        return report

    async def reload(self) -> bool:
        """Load, validate and apply the files as they are now; False keeps the last good set."""
        async with self._lock:
            started = time.perf_counter()
            if self._running is not None:
                self._seen = await asyncio.to_thread(fingerprint, self._running)
            try:
                config = await asyncio.to_thread(self._load)
                base = self._running or config
                problems = missing_channels(base, config)
                if problems:
                    raise ConfigError(problems)
                report = await self._live.apply(config)
            except ConfigError as exc:
                self._failed([str(p) for p in exc.problems])
                return False
            except Exception as exc:  # a trigger that cannot be built, a ledger error…
                log.debug("reload failed", exc_info=True)
                self._failed([f"{type(exc).__name__}: {exc}"])
                return False
            for setting in restart_only_changes(base, config):
                log.warning("reload: %s changed; restart nextstep to apply it", setting)
            self._succeeded(config)
            log.info(
                "reload applied in %.0f ms: %s (rules %s; triggers %s)",
                (time.perf_counter() - started) * 1000,
                plural(len(config.rules), "rule"),
                report.rules.summary(),
                report.triggers.summary(),
            )
            return True

    def _succeeded(self, config: Config) -> None:
        now = self._clock.now()
        self.state = ReloadState(True, now, now, [], len(config.rules))
        RELOAD_OK.set(1)
        RELOAD_TIME.set(now)
        self._on_applied(config)

    def _failed(self, problems: list[str]) -> None:
        self.state.ok = False
        self.state.at = self._clock.now()
        self.state.problems = problems
        RELOAD_OK.set(0)
        log.error(
            "reload rejected, the last good rules stay in force (%d problem%s)",
            len(problems),
            "" if len(problems) == 1 else "s",
        )
        for problem in problems:
            log.error("%s", problem)

    async def watch(self, paths: Callable[[], list[Path]]) -> None:
        """Reload on every change to a config or rule file under ``paths()`` (directories),
        until cancelled; the watched set follows the config (e.g. a new rules folder).

        Events alone are not enough: a file saved before the OS watch is armed (right after
        the start) would never be seen. So the watcher also wakes every ``RECHECK_MS`` and
        reloads when the files differ from those the rules in force were loaded from."""
        while True:
            watched = paths()
            relevant = _relevance(self._live.config.path)
            recursive = "**" in str(self._live.config.settings.get("rules", ""))
            try:
                async for changes in awatch(
                    *watched,
                    watch_filter=relevant,
                    debounce=50,
                    step=25,
                    recursive=recursive,
                    rust_timeout=RECHECK_MS,
                    yield_on_timeout=True,
                ):
                    if not changes and not await self._files_changed():
                        continue
                    await self.reload()
                    if paths() != watched:
                        break
            except Exception:  # a watched folder vanished…: never let it stop the daemon
                log.warning("watching %s failed; watching again in 1s", watched, exc_info=True)
                await self._clock.sleep(1.0)

    async def _files_changed(self) -> bool:
        running = self._running
        if running is None or self._seen is None:
            return False
        return await asyncio.to_thread(fingerprint, running) != self._seen


def fingerprint(config: Config) -> Fingerprint:
    """Every config or rule file under the config's watched folders, with its modification
    time and size: what a reload compares to know whether a file changed unseen."""
    relevant = _relevance(config.path)
    recursive = "**" in str(config.settings.get("rules", ""))
    seen: set[tuple[str, int, int]] = set()
    for folder in watch_paths(config):
        for path in folder.rglob("*") if recursive else folder.iterdir():
            try:
                if not relevant(Change.modified, str(path)):
                    continue
                stat = path.stat()
            except OSError:  # removed meanwhile: its absence is the change
                continue
            seen.add((str(path), stat.st_mtime_ns, stat.st_size))
    return frozenset(seen)


def _relevance(config_path: Path | str) -> Callable[[Change, str], bool]:
    config_file = Path(config_path).resolve()

    def relevant(change: Change, path: str) -> bool:
        candidate = Path(path)
        return candidate.suffix in RULE_SUFFIXES or candidate.resolve() == config_file

    return relevant


def watch_paths(config: Config) -> list[Path]:
    """The folders to watch: the config file's and every folder rules come from (a rules glob
    is watched from its last folder without wildcards)."""
    folders = {config.path.parent, *(Path(f).parent for f in config.rule_files)}
    raw = config.settings.get("rules", "rules/")
    for spec in [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []:
        target = config.base_dir / str(spec)
        if glob.has_magic(str(spec)):
            parts = []
            for part in target.parts:
                if glob.has_magic(part):
                    break
                parts.append(part)
            target = Path(*parts)
        folders.add(target)
    return sorted(f for f in folders if f.is_dir())
