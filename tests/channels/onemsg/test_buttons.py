"""A message's buttons come from its approved template (``GET templates``): the console's trace
shows them under the text (issue 11: "the message as the client sees it … the URL button")."""

from __future__ import annotations

import json

from nextstep.adapters.channels.onemsg.channel import OneMsgChannel
from nextstep.adapters.channels.onemsg.sandbox.templates import NAMESPACE
from nextstep.adapters.channels.onemsg.templates import parse_template
from nextstep.engine.clock import FakeClock
from nextstep.engine.plugins import ShowsButtons, TemplateButton
from nextstep.engine.runtime.console.trace import shown_buttons
from tests.support.sandbox import SandboxHandle

URL = {"type": "URL", "text": "Open my account", "url": "https://example.com/account"}
REPLY = {"type": "QUICK_REPLY", "text": "Done"}


def test_buttons_are_read_from_components_as_a_list_or_a_json_string() -> None:
    body = {"type": "BODY", "text": "Hi {{1}}"}
    for components in (
        [body, {"type": "BUTTONS", "buttons": [URL, REPLY]}],
        json.dumps([body, {"type": "buttons", "buttons": [URL, REPLY]}]),
    ):
        template = parse_template({"name": "t", "language": "en", "components": components})
        assert template is not None
        assert template.buttons == (
            TemplateButton("URL", "Open my account", "https://example.com/account"),
            TemplateButton("QUICK_REPLY", "Done"),
        )
        reply = {"kind": "QUICK_REPLY", "text": "Done", "url": ""}
        assert template.as_dict()["buttons"][1] == reply


def test_malformed_buttons_are_left_out() -> None:
    buttons = {"type": "BUTTONS", "buttons": ["x", {"type": "URL"}, {"text": "Only text"}]}
    template = parse_template({"name": "t", "components": [buttons, {"type": "BUTTONS"}]})
    assert template is not None and template.buttons == (TemplateButton("", "Only text"),)


async def test_the_channel_tells_a_messages_buttons(sandbox: SandboxHandle) -> None:
    channel = OneMsgChannel("w", sandbox.channel_config("i1"), clock=FakeClock(0.0))
    fields = {"template": "next_step", "namespace": NAMESPACE, "language": "en", "params": []}
    try:
        assert isinstance(channel, ShowsButtons)
        assert [b.text for b in await channel.buttons(fields)] == ["Open my account"]
        assert await channel.buttons({**fields, "template": "next_step_short"}) == ()
        assert await channel.buttons({**fields, "template": "no_such_template"}) == ()
    finally:
        await channel.aclose()


def test_only_a_web_address_becomes_a_link() -> None:
    shown = shown_buttons(
        [
            TemplateButton("URL", "Open", "https://example.com/a"),
            TemplateButton("URL", "Trap", "javascript:alert(1)"),
            TemplateButton("QUICK_REPLY", "Done"),
        ]
    )
    assert [b["link"] for b in shown] == ["https://example.com/a", "", ""]
    assert shown[1]["url"] == "javascript:alert(1)"  # shown as text, never as a link
