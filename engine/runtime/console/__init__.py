"""The web console at ``/ui``: overview, notifications, traces, in-doubt decisions, rules and
a playground, for operators and support staff (docs/console.md).

Server-rendered pages (Starlette + Jinja2), one small script, every asset inside the package.
The daemon mounts :func:`app.console_routes` when ``server.console`` is configured.
"""
