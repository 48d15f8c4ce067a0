"""``nextstep sandbox``: a local 1MSG-compatible API for demos, tests and benchmarks.

Added to the CLI by the ``nextstep.commands`` entry point; the sandbox itself is imported when
the command runs, so that ``nextstep --help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click

from nextstep.engine.durations import parse_duration, parse_rate

DEMO_TOKEN = "demo-token"  # what nextstep.yaml's demo channel sends when ONEMSG_TOKEN is unset


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _webhook_form(value: str) -> Literal["string", "list", "string-only"]:
    if value == "list":
        return "list"
    return "string-only" if value == "string-only" else "string"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8790, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--token",
    envvar="ONEMSG_TOKEN",
    default=DEMO_TOKEN,
    show_default=True,
    show_envvar=True,
    help="The API token clients must send.",
)
@click.option(
    "--instance",
    "instances",
    multiple=True,
    help="Accept only this instance id (repeatable; default: any).",
)
@click.option(
    "--latency",
    default="0ms",
    show_default=True,
    callback=_duration,
    help="Delay before every answer, e.g. 100ms.",
)
@click.option(
    "--ack-delay",
    default="300ms",
    show_default=True,
    callback=_duration,
    help="Time between a message's statuses (sent, delivered, read).",
)
@click.option(
    "--slow",
    default="15s",
    show_default=True,
    callback=_duration,
    help="How late numbers ending in 0005 are answered.",
)
@click.option(
    "--rate",
    default=None,
    callback=_rate,
    help="Per-instance rate limit, e.g. 50/s; beyond it: 429 with Retry-After.",
)
@click.option(
    "--ttl-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="Sandbox seconds per second of messageSendTtlSeconds (0.01: a 30 s TTL lasts 0.3 s).",
)
@click.option("--no-acks", is_flag=True, help="Never post acks (hookInfo still has them).")
@click.option(
    "--acks-on", is_flag=True, help="Start with ackNotificationsOn (1MSG starts with it off)."
)
@click.option(
    "--unknown-template",
    type=click.Choice(["sent-false", "meta"]),
    default="sent-false",
    show_default=True,
    help="Refuse unknown templates with 200 sent:false or Meta error 132001.",
)
@click.option(
    "--webhook-form",
    type=click.Choice(["string", "list", "string-only"]),
    default="string",
    show_default=True,
    help="webhookUrl as one string (the official SDK's type), as a list, or only strings.",
)
@click.option(
    "--templates",
    "templates_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve these templates (YAML/JSON list) instead of the built-in set.",
)
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scripted recipients and channel status (see docs/sandbox.md).",
)
def sandbox(
    host: str,
    port: int,
    token: str,
    instances: tuple[str, ...],
    latency: float,
    ack_delay: float,
    slow: float,
    rate: float | None,
    ttl_scale: float,
    no_acks: bool,
    acks_on: bool,
    unknown_template: str,
    webhook_form: str,
    templates_file: Path | None,
    scenario_file: Path | None,
) -> None:
    """Serve a local 1MSG-compatible API (sendTemplate, templates, webhook, settings, hookInfo,
    status, messages) with scripted recipients: numbers ending in 0001…0010 fail in known
    ways."""
    from nextstep.adapters.channels.onemsg.sandbox.config import SandboxConfig
    from nextstep.adapters.channels.onemsg.sandbox.scenarios import (
        default_scenario,
        load_scenario,
        scripts_summary,
    )
    from nextstep.adapters.channels.onemsg.sandbox.server import run
    from nextstep.adapters.channels.onemsg.sandbox.templates import (
        BUILTIN_TEMPLATES,
        load_templates,
    )

    options: dict[str, Any] = {}
    try:
        options["templates"] = (
            load_templates(templates_file) if templates_file else BUILTIN_TEMPLATES
        )
        options["scenario"] = (
            load_scenario(scenario_file, slow=slow) if scenario_file else default_scenario(slow)
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    config = SandboxConfig(
        token=token,
        instances=frozenset(instances) or None,
        latency=latency,
        ack_delay=ack_delay,
        acks=not no_acks,
        ack_notifications_on=acks_on,
        rate_limit=rate,
        unknown_template="meta" if unknown_template == "meta" else "sent_false",
        webhook_form=_webhook_form(webhook_form),
        ttl_scale=ttl_scale,
        **options,
    )
    click.echo(f"1MSG sandbox on http://{host}:{port}/{{instanceId}}/… (token {token})")
    for line in scripts_summary(config.scenario.scripts):
        click.echo(f"  {line}")
    run(config, host, port)
