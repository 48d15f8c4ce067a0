"""The plug-in registry: names without imports, one load per plug-in, and every way a plug-in can
be unusable reported once, with the reason and where a configuration uses it."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextstep.engine.commands.cli import main
from nextstep.engine.plugins import (
    ChannelClass,
    PluginUnavailable,
    TriggerClass,
    channel_class,
    channel_types,
    installed,
    trigger_class,
    trigger_kinds,
)
from nextstep.engine.plugins.registry import CHANNELS, TRIGGERS, protocol_members, resolve
from tests.rules.helpers import CONFIG, write_config
from tests.support.distributions import on_path, write_distribution

HALF_A_TRIGGER = """
class Trigger:
    def __init__(self, config, context):
        pass
"""


def test_the_bundled_plug_ins_are_listed_and_load() -> None:
    assert {"csv", "http", "db_poll"} <= set(trigger_kinds())
    assert {"1msg", "webhook", "smtp"} <= set(channel_types())
    assert isinstance(trigger_class("csv"), TriggerClass)
    assert isinstance(channel_class("webhook"), ChannelClass)
    assert trigger_class("csv") is trigger_class("csv")


def test_protocol_members_are_what_a_plug_in_defines() -> None:
    assert "source_key" in protocol_members(TriggerClass)
    assert "__call__" in protocol_members(TriggerClass)
    assert "preview" in protocol_members(ChannelClass)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(
            "nextstep_no_such_module:X",
            "importing nextstep_no_such_module:X failed: no module named 'nextstep_no_such_module'",
            id="missing-module",
        ),
        pytest.param(
            "nextstep_no_such_module:X [db]",
            "importing nextstep_no_such_module:X failed: no module named 'nextstep_no_such_module'",
            id="own-module-missing-despite-extras",
        ),
        pytest.param(
            "tests.support.missing_dependency:X [db]",
            "needs nextstep_no_such_dependency: install the plug-in with its [db] extra",
            id="missing-extra",
        ),
        pytest.param(
            "nextstep.engine.model:Event",
            "nextstep.engine.model:Event does not provide check, config_schema, source_key",
            id="not-a-trigger",
        ),
    ],
)
def test_why_an_entry_point_cannot_be_used(value: str, reason: str) -> None:
    point = EntryPoint("x", value, TRIGGERS)
    assert resolve(point, TriggerClass) == (None, reason)


def test_a_missing_extra_names_the_pip_command(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "acme-triggers",
        {TRIGGERS: {"fax": "acme_fax_trigger:FaxTrigger [fax]"}},
        {"acme_fax_trigger": "import acme_fax_driver_not_installed\n"},
    )
    [dist] = distributions(path=[str(tmp_path)])
    [point] = dist.entry_points
    with on_path(tmp_path):
        _, reason = resolve(point, TriggerClass)
    assert reason == "needs acme_fax_driver_not_installed: pip install 'acme-triggers[fax]'"


def test_a_broken_plug_in_is_logged_once_and_fails_each_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_distribution(
        tmp_path,
        "acme-broken",
        {TRIGGERS: {"boom": "acme_boom:Trigger", "half": "acme_half:Trigger"}},
        {"acme_boom": "raise RuntimeError('boom at import')\n", "acme_half": HALF_A_TRIGGER},
    )
    with on_path(tmp_path), caplog.at_level(logging.WARNING, "nextstep.engine.plugins"):
        assert {"boom", "half", "csv"} <= set(trigger_kinds())
        for _ in range(2):
            with pytest.raises(PluginUnavailable, match="RuntimeError: boom at import"):
                trigger_class("boom")
        with pytest.raises(PluginUnavailable, match="does not provide .*source_key"):
            trigger_class("half")
        found, failed = installed(TRIGGERS)
    assert {"csv", "http"} <= set(found) and set(failed) == {"boom", "half"}
    assert str(failed["boom"]).startswith("trigger 'boom' is not available: importing")
    logged = [r.getMessage() for r in caplog.records if r.name == "nextstep.engine.plugins"]
    assert len(logged) == 2 and all("is not available" in m for m in logged)


def test_validate_locates_an_unavailable_plug_in_where_it_is_used(tmp_path: Path) -> None:
    plugins = tmp_path / "site"
    write_distribution(
        plugins,
        "acme-broken",
        {TRIGGERS: {"boom": "acme_boom2:Trigger"}, CHANNELS: {"fax": "acme_fax:Fax [fax]"}},
        {"acme_boom2": "raise RuntimeError('boom at import')\n", "acme_fax": "import acme_no\n"},
    )
    config = write_config(
        tmp_path,
        """\
        - id: r
          trigger:
            boom: {path: x}
          send: {channel: crm, body: {x: 1}}
        """,
        config=CONFIG + "  fax: {type: fax}\n",
    )
    with on_path(plugins):
        result = CliRunner().invoke(main, ["validate", "-c", str(config)])
    assert result.exit_code == 1
    assert (
        "rules/rules.yaml:4:11: rule r: trigger.boom: trigger 'boom' is not available: "
        "importing acme_boom2:Trigger failed: RuntimeError: boom at import"
    ) in result.output
    assert (
        "nextstep.yaml:9:15: channels.fax.type: channel type 'fax' is not available: "
        "needs acme_no: pip install 'acme-broken[fax]'"
    ) in result.output
