"""A local 1MSG-compatible API for demos, tests and benchmarks (``nextstep sandbox``).

See :mod:`adapters.onemsg_sandbox.scenarios` for the scripted recipients and docs/sandbox.md.
"""

from adapters.onemsg_sandbox.app import create_app
from adapters.onemsg_sandbox.config import DEFAULT_TOKEN, SandboxConfig
from adapters.onemsg_sandbox.scenarios import Scenario, default_scenario, load_scenario
from adapters.onemsg_sandbox.state import SandboxState

__all__ = [
    "DEFAULT_TOKEN",
    "SandboxConfig",
    "SandboxState",
    "Scenario",
    "create_app",
    "default_scenario",
    "load_scenario",
]
