"""A local 1MSG-compatible API for demos, tests and benchmarks (``nextstep sandbox``).

See :mod:`onemsg.sandbox.scenarios` for the scripted recipients and docs/sandbox.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nextstep.adapters.channels.onemsg.sandbox.app import create_app
    from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN, SandboxConfig
    from nextstep.adapters.channels.onemsg.sandbox.scenarios import (
        Scenario,
        default_scenario,
        load_scenario,
    )
    from nextstep.adapters.channels.onemsg.sandbox.state import SandboxState

# Loaded on first use (PEP 562): the ``nextstep sandbox`` command lives in this package, and the
# command line registers it at every start; the web app must not load with it.
_WHERE = {
    "create_app": "app",
    "DEFAULT_TOKEN": "config",
    "SandboxConfig": "config",
    "Scenario": "scenarios",
    "default_scenario": "scenarios",
    "load_scenario": "scenarios",
    "SandboxState": "state",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_TOKEN",
    "SandboxConfig",
    "SandboxState",
    "Scenario",
    "create_app",
    "default_scenario",
    "load_scenario",
]
