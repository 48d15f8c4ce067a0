"""A rule's ``optout:`` (which opt-outs stop its messages) is compiled, checked and carried by
every notification it makes, fallbacks included."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextstep.engine.errors import ConfigError
from nextstep.engine.model import ALL_CHANNELS, Event
from nextstep.engine.rules.render import evaluate
from nextstep.engine.rules.rule import OptOutPolicy
from tests.rules.helpers import WHATSAPP_SEND, load, one_rule

EVENT = Event({"first_name": "ana", "due_date": "2026-06-20", "phone": "+34 600 111 222"})


def _rule(optout: str) -> str:
    return f"""\
trigger: {{http: {{path: /events/x}}}}
to: "{{{{ event.phone }}}}"
{optout}
""" + WHATSAPP_SEND.replace("    send:", "send:").replace("\n    ", "\n")


@pytest.mark.parametrize(
    ("policy", "channel", "scopes"),
    [
        pytest.param(OptOutPolicy(), "whatsapp", None, id="default"),
        pytest.param(OptOutPolicy(exempt=frozenset({"crm"})), "crm", (), id="exempt"),
        pytest.param(OptOutPolicy(exempt=frozenset({"crm"})), "whatsapp", None, id="not-exempt"),
        pytest.param(
            OptOutPolicy(honours=("whatsapp",)), "mail", ("mail", ALL_CHANNELS, "whatsapp"), id="h"
        ),
        pytest.param(
            OptOutPolicy(honours=("whatsapp",)), "whatsapp", ("whatsapp", ALL_CHANNELS), id="own"
        ),
    ],
)
def test_scopes(policy: OptOutPolicy, channel: str, scopes: tuple[str, ...] | None) -> None:
    assert policy.scopes(channel) == scopes


def test_a_rule_carries_its_optout_to_its_notifications(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, _rule("optout: {honours: [mail], exempt: [crm]}"))
    assert rule.optout == OptOutPolicy(("mail",), frozenset({"crm"}))
    found = evaluate(rule, EVENT, now=0.0, default_country="ES")
    assert getattr(found, "optout", None) == ("whatsapp", ALL_CHANNELS, "mail")


def test_without_optout_notifications_have_the_default(tmp_path: Path) -> None:
    rule = one_rule(tmp_path, _rule(""))
    assert getattr(evaluate(rule, EVENT, now=0.0, default_country="ES"), "optout", 1) is None


def test_unknown_channels_are_reported(tmp_path: Path) -> None:
    text = "  - id: r\n" + "\n".join(
        "    " + line for line in _rule("optout: {honours: [whatsap], exempt: [nope]}").splitlines()
    )
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text + "\n")
    shown = str(caught.value)
    assert "optout.honours[0]: unknown channel 'whatsap'; did you mean 'whatsapp'?" in shown
    assert "optout.exempt[0]: unknown channel 'nope'" in shown
