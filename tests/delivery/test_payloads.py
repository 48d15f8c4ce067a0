"""Reading acks from 1MSG's normalised payloads, Meta's raw envelope and hookInfo answers."""

from __future__ import annotations

from typing import Any

import pytest

from nextstep.adapters.channels.onemsg.acks import acks_from_hook_info, parse_payload
from nextstep.engine.model import Ack, OutcomeKind

EXPERIMENT = "User's number is part of an experiment"


def test_normalised_payload_with_several_acks_and_messages() -> None:
    payload = parse_payload(
        {
            "instanceId": "VID1",
            "ack": [
                {"id": "wamid.1", "status": "delivered", "chatId": "1@c.us"},
                {
                    "id": "wamid.2",
                    "status": "failed",
                    "error": "User's number is part of an experiment",
                },
                {"id": "wamid.3", "status": "READ"},
            ],
            "messages": [{"id": "in.1", "type": "chat", "body": "hi"}],
        }
    )
    assert payload is not None
    assert payload.acks == [
        Ack("wamid.1", "delivered"),
        Ack("wamid.2", "failed", EXPERIMENT, failure=OutcomeKind.RECIPIENT),
        Ack("wamid.3", "read"),
    ]
    assert payload.messages == 1
    assert payload.rejected == 0


@pytest.mark.parametrize(
    ("doc", "acks", "rejected"),
    [
        pytest.param({"ack": {"id": "w", "status": "sent"}}, [Ack("w", "sent")], 0, id="single"),
        pytest.param({"ack": [{"id": "w"}, 7, {"status": "read"}]}, [], 3, id="bad-items"),
        pytest.param({"messages": [{}, {}]}, [], 0, id="only-messages"),
        pytest.param({"ack": [], "instanceId": "x"}, [], 0, id="empty"),
    ],
)
def test_odd_payloads(doc: dict[str, Any], acks: list[Ack], rejected: int) -> None:
    payload = parse_payload(doc)
    assert payload is not None
    assert (payload.acks, payload.rejected) == (acks, rejected)


@pytest.mark.parametrize("doc", [[], "x", 3, None])
def test_not_a_payload(doc: Any) -> None:
    assert parse_payload(doc) is None


META_FAILED = {
    "id": "wamid.9",
    "status": "failed",
    "timestamp": "1708603746",
    "recipient_id": "15551340563",
    "errors": [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "error_data": {"details": "more than 24 hours have passed"},
        }
    ],
}


def test_raw_meta_envelope() -> None:
    doc = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [{"field": "messages", "value": {"statuses": [META_FAILED]}}]}
        ],
    }
    payload = parse_payload(doc)
    assert payload is not None
    assert payload.acks == [
        Ack(
            "wamid.9",
            "failed",
            "more than 24 hours have passed",
            131047,
            failure=OutcomeKind.RECIPIENT,
        )
    ]


def test_hook_info_answer() -> None:
    answer = {
        "hooks": [
            {"id": "gBGG", "type": "message", "status": "sent", "timestamp": "1654864094"},
            {"id": "gBGG", "status": "delivered", "timestamp": "1654864095"},
            "junk",
        ]
    }
    assert acks_from_hook_info(answer, "wamid.5") == [
        Ack("wamid.5", "sent", source="poll"),
        Ack("wamid.5", "delivered", source="poll"),
    ]
    assert acks_from_hook_info({"hooks": []}, "w") == []
    assert acks_from_hook_info([META_FAILED], "w")[0].code == 131047


def test_ack_detail_for_history() -> None:
    assert Ack("w", "failed", "boom", 131000, "poll").detail() == {
        "status": "failed",
        "source": "poll",
        "error": "boom",
        "code": 131000,
    }
