"""The two plug-in points, triggers and channels: their contract and the one registry.

The engine never imports a concrete adapter: plug-ins are entry points (groups
``nextstep.triggers``, ``nextstep.channels``, ``nextstep.commands``) of any installed
distribution, loaded by :mod:`.registry` when first used. :mod:`.contract` holds the
Protocols and values, :mod:`.abilities` the optional abilities. docs/plugins.md is the guide.
"""

from nextstep.engine.plugins.abilities import ReportsStatus, ServesRoutes
from nextstep.engine.plugins.contract import (
    Channel,
    ChannelClass,
    ConfigProblem,
    Emit,
    EventResult,
    RuleResult,
    Trigger,
    TriggerClass,
    TriggerContext,
)
from nextstep.engine.plugins.registry import (
    PluginUnavailable,
    channel_class,
    channel_types,
    installed,
    trigger_class,
    trigger_kinds,
)

__all__ = [
    "Channel",
    "ChannelClass",
    "ConfigProblem",
    "Emit",
    "EventResult",
    "PluginUnavailable",
    "ReportsStatus",
    "RuleResult",
    "ServesRoutes",
    "Trigger",
    "TriggerClass",
    "TriggerContext",
    "channel_class",
    "channel_types",
    "installed",
    "trigger_class",
    "trigger_kinds",
]
