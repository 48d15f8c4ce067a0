"""A local 1MSG-compatible API for demos, tests and benchmarks (``nextstep sandbox``).

See :mod:`onemsg.sandbox.scenarios` for the scripted recipients and docs/sandbox.md.
"""

from nextstep.adapters.channels.onemsg.sandbox.app import create_app
from nextstep.adapters.channels.onemsg.sandbox.config import DEFAULT_TOKEN, SandboxConfig
from nextstep.adapters.channels.onemsg.sandbox.scenarios import (
    Scenario,
    default_scenario,
    load_scenario,
)
from nextstep.adapters.channels.onemsg.sandbox.state import SandboxState

__all__ = [
    "DEFAULT_TOKEN",
    "SandboxConfig",
    "SandboxState",
    "Scenario",
    "create_app",
    "default_scenario",
    "load_scenario",
]
