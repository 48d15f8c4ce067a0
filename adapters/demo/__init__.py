"""``nextstep demo``: the whole pipeline on embedded defaults, with no account and no setup.

It composes the bundled plug-ins (the 1MSG sandbox, a stand-in CRM receiving the webhook
channel's posts) with the daemon; :mod:`.run` does it, :mod:`.command` is the command the
``nextstep.commands`` entry point adds to the CLI. The example rules ship in ``rules/``.
"""
