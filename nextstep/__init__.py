"""nextstep: tell clients on WhatsApp when their case moves forward.

One import package. Its two sub-packages are the repository's top-level folders, linked here
so that every tool (pip, mypy, pytest) sees the tree as it is imported:

- :mod:`nextstep.engine`: the core, one sub-package per stage of the flow (rules → intake →
  ledger → sending → delivery), plus runtime (the daemon) and commands (the CLI);
- :mod:`nextstep.adapters`: the plug-ins shipped with nextstep, triggers and channels.
"""

__version__ = "0.1.0"
__distribution__ = "nextstep-whatsapp"  # the name on PyPI (`nextstep` is taken there)
