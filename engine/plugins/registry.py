"""The one plug-in loader: entry points by name, each plug-in imported on first use.

Names come from the installed distributions' entry points without importing anything
(:func:`trigger_kinds`, :func:`channel_types`). :func:`trigger_class` / :func:`channel_class`
import one plug-in the first time it is asked for and remember the answer, success or failure.
A plug-in that cannot be loaded (its module fails to import, or what it names does not satisfy
the Protocol) raises :class:`PluginUnavailable`; it is logged once, and the configuration that
uses it reports it as a located problem.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, cast

from nextstep.engine.errors import NextstepError
from nextstep.engine.plugins.contract import ChannelClass, TriggerClass

log = logging.getLogger("nextstep.engine.plugins")

TRIGGERS = "nextstep.triggers"
CHANNELS = "nextstep.channels"
COMMANDS = "nextstep.commands"
_WHAT = {TRIGGERS: "trigger", CHANNELS: "channel type", COMMANDS: "command"}

# (group, name) -> the loaded object, or the reason it could not be loaded.
_loaded: dict[tuple[str, str], tuple[Any, str | None]] = {}


class PluginUnavailable(NextstepError):
    """A plug-in is installed (or named) but cannot be used; ``reason`` says why."""

    def __init__(self, group: str, name: str, reason: str) -> None:
        self.group = group
        self.name = name
        self.reason = reason
        super().__init__(f"{_WHAT.get(group, group)} '{name}' is not available: {reason}")


@cache
def _points(group: str) -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=group)}


def names(group: str) -> tuple[str, ...]:
    """The plug-in names of ``group``, sorted, without importing any of them."""
    return tuple(sorted(_points(group)))


def trigger_kinds() -> tuple[str, ...]:
    """Trigger keys installed (``nextstep.triggers`` entry points), without importing them."""
    return names(TRIGGERS)


def channel_types() -> tuple[str, ...]:
    """Channel ``type:`` names installed (``nextstep.channels``), without importing them."""
    return names(CHANNELS)


def trigger_class(kind: str) -> TriggerClass:
    """The trigger class of ``kind``; PluginUnavailable when it cannot be loaded."""
    return cast(TriggerClass, load(TRIGGERS, kind, TriggerClass))


def channel_class(kind: str) -> ChannelClass:
    """The channel class of ``type: kind``; PluginUnavailable when it cannot be loaded."""
    return cast(ChannelClass, load(CHANNELS, kind, ChannelClass))


def installed(group: str) -> tuple[dict[str, Any], dict[str, PluginUnavailable]]:
    """Every plug-in of ``group`` loaded: the ones that work and the ones that do not."""
    protocol = _PROTOCOLS.get(group)
    found: dict[str, Any] = {}
    failed: dict[str, PluginUnavailable] = {}
    for name in names(group):
        try:
            found[name] = load(group, name, protocol)
        except PluginUnavailable as exc:
            failed[name] = exc
    return found, failed


def load(group: str, name: str, protocol: type | None = None) -> Any:
    """The object the entry point ``name`` of ``group`` names, checked against ``protocol``
    (a runtime-checkable Protocol); loaded once, failures included."""
    key = (group, name)
    if key not in _loaded:
        _loaded[key] = _load(group, name, protocol)
    value, reason = _loaded[key]
    if reason is not None:
        raise PluginUnavailable(group, name, reason)
    return value


def _load(group: str, name: str, protocol: type | None) -> tuple[Any, str | None]:
    point = _points(group).get(name)
    if point is None:
        shown = ", ".join(names(group)) or "none"
        return None, f"no such plug-in is installed (installed: {shown})"
    loaded, reason = resolve(point, protocol)
    if reason is not None:
        log.warning("%s", PluginUnavailable(group, name, reason))
    return loaded, reason


def resolve(point: EntryPoint, protocol: type | None) -> tuple[Any, str | None]:
    """The object ``point`` names, or None and why it cannot be used: its import fails, or it
    lacks members of ``protocol``. A missing module of a plug-in declaring extras says which
    ``pip install`` brings it."""
    try:
        loaded = point.load()
    except ModuleNotFoundError as exc:
        return None, _missing_module(point, exc)
    except Exception as exc:  # any error while importing a plug-in makes it unavailable
        return None, f"importing {_target(point)} failed: {type(exc).__name__}: {exc}"
    if protocol is None or isinstance(loaded, protocol):
        return loaded, None
    if Protocol not in protocol.__mro__:
        return None, f"{_target(point)} is not a {protocol.__module__}.{protocol.__qualname__}"
    missing = [member for member in protocol_members(protocol) if not hasattr(loaded, member)]
    return None, f"{_target(point)} does not provide {', '.join(missing) or 'what its group needs'}"


def _target(point: EntryPoint) -> str:
    """``module:attr`` of an entry point, without its extras."""
    return f"{point.module}:{point.attr}" if point.attr else point.module


def _missing_module(point: EntryPoint, exc: ModuleNotFoundError) -> str:
    module = exc.name or str(exc)
    own = point.module == module or point.module.startswith(module + ".")
    if own or not point.extras:
        return f"importing {_target(point)} failed: no module named {module!r}"
    extra = point.extras[0]
    dist = point.dist.name if point.dist is not None else None
    if dist is None:
        return f"needs {module}: install the plug-in with its [{extra}] extra"
    return f"needs {module}: pip install '{dist}[{extra}]'"


def protocol_members(protocol: type) -> list[str]:
    """The attribute names a Protocol requires (annotations and methods), sorted."""
    members: set[str] = set()
    for base in protocol.__mro__:
        if base is object or base.__name__ in {"Protocol", "Generic"}:
            continue
        members |= set(getattr(base, "__annotations__", {}))
        members |= {k for k, v in vars(base).items() if callable(v) or isinstance(v, staticmethod)}
    return sorted(m for m in members if not m.startswith("_") or m == "__call__")


def forget() -> None:
    """Forget every loaded plug-in and entry point (after installing one at run time)."""
    _loaded.clear()
    _points.cache_clear()


_PROTOCOLS: dict[str, type] = {TRIGGERS: TriggerClass, CHANNELS: ChannelClass}


def command_plugins() -> dict[str, Any]:
    """The click commands of group ``nextstep.commands`` by name; one that cannot be loaded is
    logged once and left out (the command line works without it)."""
    import click  # the command line's dependency, needed here only

    found: dict[str, Any] = {}
    for name in names(COMMANDS):
        try:
            found[name] = load(COMMANDS, name, click.Command)
        except PluginUnavailable:
            continue
    return found
