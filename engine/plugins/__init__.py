"""The plug-in points (triggers, channels, commands): their contract and the one registry.

The engine never imports a concrete adapter: plug-ins are entry points (groups
``nextstep.triggers``, ``nextstep.channels``, ``nextstep.commands``) of any installed
distribution, loaded by :mod:`.registry` when first used. :mod:`.contract` holds the
Protocols and values, :mod:`.abilities` the optional abilities. docs/plugins.md is the guide.
"""

from nextstep.engine.plugins.abilities import (
    AckRecorder,
    AckRegistration,
    FileReader,
    FileSummary,
    ListsTemplates,
    LooksUpStatus,
    MessageRecorder,
    ProviderTemplate,
    ReadsFiles,
    ReceivesAcks,
    ReceivesMessages,
    RegistersAcks,
    ReportsStatus,
    SendsText,
    ServesRoutes,
    TemplateCheck,
)
from nextstep.engine.plugins.contract import (
    Channel,
    ChannelClass,
    ChannelTraits,
    CompiledSend,
    ConfigProblem,
    Emit,
    EventResult,
    Preview,
    RuleResult,
    SendCompiler,
    Trigger,
    TriggerClass,
    TriggerContext,
    Whitespace,
)
from nextstep.engine.plugins.registry import (
    PluginUnavailable,
    channel_class,
    channel_types,
    installed,
    trigger_class,
    trigger_kinds,
)
from nextstep.engine.plugins.sends import TemplatedSend

__all__ = [
    "AckRecorder",
    "AckRegistration",
    "Channel",
    "ChannelClass",
    "ChannelTraits",
    "CompiledSend",
    "ConfigProblem",
    "Emit",
    "EventResult",
    "FileReader",
    "FileSummary",
    "ListsTemplates",
    "LooksUpStatus",
    "MessageRecorder",
    "PluginUnavailable",
    "Preview",
    "ProviderTemplate",
    "ReadsFiles",
    "ReceivesAcks",
    "ReceivesMessages",
    "RegistersAcks",
    "ReportsStatus",
    "RuleResult",
    "SendCompiler",
    "SendsText",
    "ServesRoutes",
    "TemplateCheck",
    "TemplatedSend",
    "Trigger",
    "TriggerClass",
    "TriggerContext",
    "Whitespace",
    "channel_class",
    "channel_types",
    "installed",
    "trigger_class",
    "trigger_kinds",
]
