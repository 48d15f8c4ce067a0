"""Reload: the diff by source key, the all-or-nothing swap, and the rejected reload."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError, NextstepError, Problem
from nextstep.engine.metrics import REGISTRY
from nextstep.engine.model import Event, Progress
from nextstep.engine.plugins import Emit, EventResult
from nextstep.engine.rules.config import Config, load_config
from nextstep.engine.runtime.reload import (
    LiveRules,
    Reloader,
    TriggerSpec,
    diff,
    missing_channels,
    restart_only_changes,
    watch_paths,
)
from nextstep.engine.runtime.supervisor import Supervisor
from tests.runtime.harness import Workspace, rule_yaml

HTTP = "http: {path: /events/a}"
CSV = 'csv: {path: "inbox/a/*.csv"}'


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param({}, {"a": 1}, (("a",), (), (), ()), id="added"),
        pytest.param({"a": 1}, {}, ((), ("a",), (), ()), id="removed"),
        pytest.param({"a": 1, "b": 2}, {"a": 1, "b": 3}, ((), (), ("b",), ("a",)), id="changed"),
    ],
)
def test_diff(
    old: dict[str, int], new: dict[str, int], expected: tuple[tuple[str, ...], ...]
) -> None:
    found = diff(old, new)
    assert (found.added, found.removed, found.changed, found.unchanged) == expected


class Space:
    """Rule files in a temp folder, loaded as the daemon loads them."""

    def __init__(self, root: Path) -> None:
        self.workspace = Workspace(root, "http://127.0.0.1:9")
        self.workspace.write_config()

    def load(self, **rules: str) -> Config:
        for path in (self.workspace.root / "rules").glob("*.yaml"):
            path.unlink()
        for name, text in rules.items():
            self.workspace.write_rule(f"{name}.yaml", text)
        return load_config(self.workspace.config)


class FakeTrigger:
    """Records its runs; runs until cancelled."""

    kind = "fake"

    def __init__(self, spec: TriggerSpec, log: list[str]) -> None:
        self.spec = spec
        self.log = log

    async def run(self, emit: Emit) -> None:
        self.log.append(f"start {self.spec.source_key}")
        try:
            await asyncio.Event().wait()
        finally:
            self.log.append(f"stop {self.spec.source_key}")


def recording_emit(events: list[str]) -> Callable[[Config, TriggerSpec], Emit]:
    """A build_emit whose emits record their source and the rule versions they were built with."""

    def build_emit(config: Config, spec: TriggerSpec) -> Emit:
        labels = [config.rules[r].version for r in spec.rule_ids]

        async def emit(items: Sequence[Event], progress: Sequence[Progress]) -> list[EventResult]:
            events.append(f"emit {spec.source_key} {labels}")
            return []

        return emit

    return build_emit


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_only_changed_triggers_restart_and_emits_follow_the_swap(
    tmp_path: Path, clock: FakeClock
) -> None:
    space = Space(tmp_path)
    events: list[str] = []
    persisted: list[int] = []

    async def persist(config: Config) -> None:
        persisted.append(len(config.rules))

    first = space.load(a=rule_yaml("a", HTTP, "v1"), b=rule_yaml("b", CSV, "v1"))
    async with asyncio.TaskGroup() as group:
        supervisor = Supervisor(group, clock)
        live = LiveRules(
            supervisor, lambda spec, _: FakeTrigger(spec, events), recording_emit(events), persist
        )
        await live.apply(first)
        await _settle()
        assert sorted(events) == ["start /events/a", "start inbox/a/*.csv"]
        emit_a = live.emit_for("/events/a")

        events.clear()
        second = space.load(a=rule_yaml("a", HTTP, "v2"), b=rule_yaml("b", CSV, "v1"))
        report = await live.apply(second)
        await _settle()
        assert report.rules.changed == ("a",) and report.triggers.summary() == "unchanged"
        await emit_a([], [])  # the emit a trigger already holds now uses the new rule
        assert events == [f"emit /events/a {[second.rules['a'].version]}"]

        events.clear()
        third = space.load(
            a=rule_yaml("a", HTTP, "v2"), b=rule_yaml("b", CSV.replace("a/", "c/"), "v1")
        )
        report = await live.apply(third)
        await _settle()
        assert report.triggers.added == ("inbox/c/*.csv",)
        assert report.triggers.removed == ("inbox/a/*.csv",)
        assert events == ["stop inbox/a/*.csv", "start inbox/c/*.csv"]  # /events/a untouched
        assert persisted == [2, 2, 2]

        with pytest.raises(NextstepError, match="no longer in the rules"):
            await live.emit_for("inbox/a/*.csv")([], [])
        await supervisor.stop_all()


def _metric(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def test_rejected_reload_keeps_the_last_good_set(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    space = Space(tmp_path)
    good = space.load(a=rule_yaml("a", HTTP, "v1"))
    problem = Problem("rules/a.yaml", 3, 5, "a", "send.params.2", "'event.nope' is undefined")
    answers: list[Config | ConfigError] = [ConfigError([problem]), good]

    def load() -> Config:
        answer = answers.pop(0)
        if isinstance(answer, ConfigError):
            raise answer
        return answer

    async def persist(config: Config) -> None:
        return None

    async def emit(items: Sequence[Event], progress: Sequence[Progress]) -> list[EventResult]:
        return []

    async with asyncio.TaskGroup() as group:
        supervisor = Supervisor(group, clock)
        live = LiveRules(
            supervisor, lambda spec, _emit: FakeTrigger(spec, []), lambda c, s: emit, persist
        )
        reloader = Reloader(load, live, clock)
        await reloader.start(good)
        assert _metric("nextstep_config_last_reload_successful") == 1.0
        with caplog.at_level(logging.ERROR, logger="nextstep.engine.runtime.reload"):
            assert await reloader.reload() is False
        assert live.config is good
        assert _metric("nextstep_config_last_reload_successful") == 0.0
        assert reloader.state.problems == [str(problem)]
        assert "rules/a.yaml:3:5: rule a: send.params.2: 'event.nope' is undefined" in caplog.text
        assert await reloader.reload() is True
        assert _metric("nextstep_config_last_reload_successful") == 1.0
        assert _metric("nextstep_config_last_reload_success_timestamp_seconds") == clock.now()
        await supervisor.stop_all()


def test_watch_paths_cover_the_config_and_rule_folders(tmp_path: Path) -> None:
    config = Space(tmp_path).load(a=rule_yaml("a", HTTP, "v1"))
    assert watch_paths(config) == sorted({tmp_path, tmp_path / "rules"})


def test_a_rule_on_a_channel_added_without_restart_is_refused(tmp_path: Path) -> None:
    space = Space(tmp_path)
    running = space.load(a=rule_yaml("a", HTTP, "v1"))
    with space.workspace.config.open("a", encoding="utf-8") as config:
        config.write(
            "  wa2: {type: 1msg, base_url: 'http://127.0.0.1:9', instance_id: b, token: t}\n"
        )
    new = space.load(a=rule_yaml("a", HTTP, "v1").replace("channel: whatsapp", "channel: wa2"))
    assert restart_only_changes(running, new) == ["channels"]
    (problem,) = missing_channels(running, new)
    assert (problem.rule_id, problem.path) == ("a", "send.channel")
    assert "restart nextstep" in problem.message


@pytest.mark.parametrize("saved", ["after-start", "before-start"])
async def test_a_rule_saved_before_the_watcher_is_armed_is_still_loaded(
    tmp_path: Path, clock: FakeClock, saved: str
) -> None:
    # Issue 15.12: a file saved right after the start (before the OS watch exists) was
    # never seen, while /healthz said the reload was fine.
    space = Space(tmp_path)
    first = space.load(a=rule_yaml("a", HTTP, "v1"))
    applied: list[Config] = []
    seen = asyncio.Event()

    def on_applied(config: Config) -> None:
        applied.append(config)
        seen.set()

    async def persist(config: Config) -> None:
        return None

    async def emit(items: Sequence[Event], progress: Sequence[Progress]) -> list[EventResult]:
        return []

    async with asyncio.TaskGroup() as group:
        supervisor = Supervisor(group, clock)
        live = LiveRules(
            supervisor, lambda spec, _emit: FakeTrigger(spec, []), lambda c, s: emit, persist
        )
        reloader = Reloader(
            lambda: load_config(space.workspace.config), live, clock, on_applied=on_applied
        )
        if saved == "before-start":  # after the config was read, while the daemon starts
            space.workspace.write_rule("a.yaml", rule_yaml("a", HTTP, "v2"))
            later = first.loaded_at + 0.5  # the clock's granularity must not decide the test
            os.utime(space.workspace.root / "rules" / "a.yaml", (later, later))
        await reloader.start(first)
        seen.clear()
        if saved == "after-start":  # before the watcher runs: no OS event will report it
            space.workspace.write_rule("a.yaml", rule_yaml("a", HTTP, "v2"))
        watcher = group.create_task(reloader.watch(lambda: watch_paths(live.config)))
        await asyncio.wait_for(seen.wait(), timeout=10)
        assert live.config.rules["a"].version != first.rules["a"].version
        assert reloader.state.ok
        watcher.cancel()
        await supervisor.stop_all()
