"""``nextstep optout add|remove|list|import|export`` against a real ledger of each backend."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nextstep.engine.commands.cli import main
from nextstep.engine.ledger import open_store
from nextstep.engine.model import State
from tests.support.notifications import new_notification


@pytest.fixture
def config(tmp_path: Path, ledger_url: str) -> Path:
    (tmp_path / "rules").mkdir()
    path = tmp_path / "nextstep.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            store: "{ledger_url}"
            rules: rules/
            default_country: ES
            channels:
              whatsapp: {{type: 1msg, base_url: "http://127.0.0.1:9", instance_id: i, token: t}}
              crm: {{type: webhook, url: "http://127.0.0.1:9/hook"}}
            """
        ),
        encoding="utf-8",
    )
    return path


def _run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["optout", *args, "-c", str(config)])


def test_import_is_idempotent(config: Path, ledger_url: str, tmp_path: Path) -> None:
    store = open_store(ledger_url)
    try:
        queued = store.enqueue([new_notification("34600111222")])[0].id
    finally:
        store.close()
    listing = tmp_path / "unsubscribed.csv"
    listing.write_text(
        "\ufeffPhone;Channel;Note\n+34 600 111 222;;asked in the shop\n600111333;whatsapp;\n",
        encoding="utf-8",
    )
    first = _run(config, "import", str(listing))
    assert first.exit_code == 0, first.output
    assert first.output == "2 added, 0 already there, 1 queued notification skipped\n"
    again = _run(config, "import", str(listing))
    assert again.output == "0 added, 2 already there, 0 queued notifications skipped\n"
    exported = tmp_path / "export.csv"
    assert _run(config, "export", str(exported)).exit_code == 0
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "phone,channel,at,how,note"
    assert [line.split(",")[:2] + line.split(",")[3:] for line in lines[1:]] == [
        ["34600111222", "*", "import", "asked in the shop"],
        ["34600111333", "whatsapp", "import", ""],
    ]
    back = _run(config, "import", str(exported))
    assert back.output.startswith("0 added, 2 already there")
    store = open_store(ledger_url)
    try:
        found = store.get(queued)
        assert found is not None and found.state is State.SKIPPED
    finally:
        store.close()


def test_bad_lines_are_reported_and_the_rest_taken(config: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("phone,channel\n12,\n600111222,sms\n600111333,\n", encoding="utf-8")
    result = _run(config, "import", str(listing))
    assert result.exit_code == 1
    assert "line 2: '12' is not a possible phone number" in result.stderr
    assert "line 3: unknown channel 'sms'" in result.stderr
    assert result.stdout.startswith("1 added")
    assert _run(config, "list").output.splitlines()[-1] == "1 opt-out"


def test_add_list_remove(config: Path) -> None:
    assert _run(config, "add", "+34 600 111 222", "--note", "by phone").output == (
        "34600111222: opted out of every channel; 0 queued notifications skipped\n"
    )
    assert _run(config, "add", "600111222").output == (
        "34600111222: already opted out of every channel\n"
    )
    assert _run(config, "add", "600111222", "--channel", "whatsapp").exit_code == 0
    listed = _run(config, "list").output.splitlines()
    assert [line.split()[:2] for line in listed[:-1]] == [
        ["34600111222", "*"],
        ["34600111222", "whatsapp"],
    ]
    assert listed[0].endswith("cli      by phone")
    assert '"channel": "whatsapp"' in _run(config, "list", "--json", "--phone", "600111222").output
    assert _run(config, "remove", "600111222", "--channel", "whatsapp").output == (
        "34600111222: 1 opt-out removed\n"
    )
    assert _run(config, "remove", "600111222").output == "34600111222: 1 opt-out removed\n"
    assert _run(config, "remove", "600111222").output == "34600111222: 0 opt-outs removed\n"
    assert _run(config, "list").output == "no opt-outs\n"
    unknown = _run(config, "add", "600111222", "--channel", "sms")
    assert unknown.exit_code == 2 and "unknown channel 'sms'" in unknown.output
