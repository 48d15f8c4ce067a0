"""JSON lines as a nextstep plug-in: the ``jsonl`` channel appends one JSON object per message to
a file, the ``jsonl_inbox`` trigger turns the lines of files dropped in a folder into events.

It uses only what nextstep offers plug-ins (``nextstep.engine.plugins`` and the shared values),
and nextstep's engine does not know it: the entry points in pyproject.toml are all it takes.
"""
