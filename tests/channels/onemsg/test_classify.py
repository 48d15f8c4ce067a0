"""Every row of DESIGN §4's failure table and the reference's §6.5 codes, one answer each."""

from __future__ import annotations

import email.utils

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nextstep.adapters.channels.onemsg.classify import (
    META_CODES,
    classify,
    classify_failed_ack,
    code_kind,
    parse_retry_after,
)
from nextstep.engine.model import OutcomeKind as K

NOW = 1_780_000_000.0


def meta(
    code: int, status: int = 400, details: str = "details"
) -> tuple[int, dict[str, str], bytes]:
    body = {
        "error": {
            "message": f"(#{code}) Title",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
        }
    }
    return status, {}, orjson.dumps(body)


def answer(status: int, body: object, **headers: str) -> tuple[int, dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return status, {k.replace("_", "-"): v for k, v in headers.items()}, raw


TRANSIENT_CODES = [1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057, 133004]
RECIPIENT_CODES = [130472, 131021, 131026, 131030, 131047, 131049, 131050]
TEMPLATE_CODES = [
    132000,
    132001,
    132005,
    132007,
    132012,
    132015,
    132016,
    132018,
    100,
    131008,
    131009,
    131051,
    131052,
    131053,
    135000,
]
ACCOUNT_CODES = [0, 3, 10, 190, 200, 368, 131005, 131031, 131042, 131048, 133010]

CASES = [
    # accepted: 2xx with sent:true and an id
    pytest.param(
        answer(200, {"sent": True, "id": "wamid.A", "message": "Sent to 1@c.us"}),
        K.ACCEPTED,
        id="accepted",
    ),
    pytest.param(answer(201, {"sent": True, "id": "wamid.B"}), K.ACCEPTED, id="accepted-201"),
    # in doubt: it may have been sent
    pytest.param(answer(200, {"sent": True}), K.IN_DOUBT, id="sent-without-id"),
    pytest.param(answer(200, b"<html>ok</html>"), K.IN_DOUBT, id="2xx-unreadable"),
    pytest.param(
        answer(200, {"sent": False, "jobId": "job-1", "message": "queued"}),
        K.IN_DOUBT,
        id="queued-job",
    ),
    # transient
    pytest.param(
        answer(429, {"error": "Too many requests"}, retry_after="7"), K.TRANSIENT, id="429"
    ),
    pytest.param(answer(500, {"message": "Internal server error"}), K.TRANSIENT, id="500"),
    pytest.param(answer(502, b"Bad gateway"), K.TRANSIENT, id="502-text"),
    pytest.param(answer(503, b""), K.TRANSIENT, id="503-empty"),
    pytest.param(
        answer(500, {"message": "template engine exploded"}), K.TRANSIENT, id="5xx-beats-text"
    ),
    pytest.param(
        answer(200, {"sent": False, "message": "Rate limit exceeded, try again later"}),
        K.TRANSIENT,
        id="sent-false-rate-limit",
    ),
    # recipient
    pytest.param(
        answer(200, {"sent": False, "message": "Phone is not a WhatsApp user"}),
        K.RECIPIENT,
        id="not-a-whatsapp-user",
    ),
    pytest.param(answer(400, {"message": "Invalid phone number"}), K.RECIPIENT, id="invalid-phone"),
    pytest.param(
        answer(200, {"sent": False, "message": "User's number is part of an experiment"}),
        K.RECIPIENT,
        id="experiment-text",
    ),
    pytest.param(
        answer(200, {"sent": False, "message": "something nobody documented"}),
        K.RECIPIENT,
        id="sent-false-unknown",
    ),
    pytest.param(answer(409, {"message": "conflict"}), K.RECIPIENT, id="other-4xx"),
    # template
    pytest.param(
        answer(400, {"message": "template is not defined"}),
        K.TEMPLATE,
        id="template-is-not-defined",
    ),
    pytest.param(
        answer(200, {"sent": False, "message": "Template next_step (en) not found"}),
        K.TEMPLATE,
        id="template-not-found-text",
    ),
    pytest.param(
        answer(400, {"message": "(#132000) Number of parameters does not match"}),
        K.TEMPLATE,
        id="code-in-text",
    ),
    pytest.param(
        answer(200, {"sent": False, "message": "wrong file"}), K.TEMPLATE, id="wrong-file"
    ),
    pytest.param(
        answer(400, {"message": "Invalid request parameters"}),
        K.TEMPLATE,
        id="400-invalid-parameters",
    ),
    pytest.param(meta(132999), K.TEMPLATE, id="unknown-132xxx"),
    # account
    pytest.param(answer(401, {"error": 'Wrong token "x" for channel "1".'}), K.ACCOUNT, id="401"),
    pytest.param(answer(403, b"subscriptionBlocked"), K.ACCOUNT, id="403-text"),
    pytest.param(answer(404, b"Not Found"), K.ACCOUNT, id="404-unknown-instance"),
    pytest.param(
        answer(200, {"sent": False, "message": "Invalid token"}),
        K.ACCOUNT,
        id="sent-false-invalid-token",
    ),
    # Meta codes, each of §6.5
    *(pytest.param(meta(c), K.TRANSIENT, id=f"meta-{c}") for c in TRANSIENT_CODES),
    *(pytest.param(meta(c), K.RECIPIENT, id=f"meta-{c}") for c in RECIPIENT_CODES),
    *(pytest.param(meta(c), K.TEMPLATE, id=f"meta-{c}") for c in TEMPLATE_CODES),
    *(pytest.param(meta(c), K.ACCOUNT, id=f"meta-{c}") for c in ACCOUNT_CODES),
    # the code wins over the HTTP status, and over 200
    pytest.param(meta(131026, status=500), K.RECIPIENT, id="code-beats-5xx"),
    pytest.param(meta(130429, status=200), K.TRANSIENT, id="code-in-200"),
    pytest.param(
        answer(400, {"error": {"error_code": 131026, "message": "x"}}),
        K.RECIPIENT,
        id="error_code-key",
    ),
    pytest.param(
        answer(200, {"response": {"error": {"code": 131042}}}),
        K.ACCOUNT,
        id="nested-response-error",
    ),
]


@pytest.mark.parametrize(("raw", "kind"), CASES)
def test_classify_table(raw: tuple[int, dict[str, str], bytes], kind: K) -> None:
    status, headers, body = raw
    outcome = classify(status, headers, body, now=NOW)
    assert outcome.kind is kind, outcome.reason
    assert outcome.http_status == status
    assert outcome.answer == body.decode("utf-8", "replace")


def test_accepted_carries_the_wamid() -> None:
    outcome = classify(200, {}, b'{"sent": true, "id": "wamid.HBgM=="}', now=NOW)
    assert outcome.ok and outcome.provider_id == "wamid.HBgM=="


def test_meta_code_and_details_are_kept() -> None:
    detail = (
        "body: number of localizable_params (1) does not match the expected number of params (2)"
    )
    outcome = classify(*meta(132000, details=detail), now=NOW)
    assert outcome.code == 132000
    assert detail in outcome.reason


def test_retry_after_delta_seconds() -> None:
    outcome = classify(429, {"Retry-After": "7"}, b"{}", now=NOW)
    assert outcome.kind is K.TRANSIENT and outcome.retry_after == 7.0


def test_retry_after_http_date() -> None:
    date = email.utils.formatdate(NOW + 120, usegmt=True)
    outcome = classify(503, {"retry-after": date}, b"", now=NOW)
    assert outcome.retry_after == pytest.approx(120.0)


def test_pair_rate_limit_waits_at_least_six_seconds() -> None:
    assert classify(*meta(131056), now=NOW).retry_after == 6.0
    status, _, body = meta(131056)
    assert classify(status, {"Retry-After": "30"}, body, now=NOW).retry_after == 30.0


@pytest.mark.parametrize(
    ("raw", "pause"),
    [
        pytest.param((429, {"Retry-After": "7"}, b"{}"), 7.0, id="http-429"),
        pytest.param((429, {}, b"{}"), 1.0, id="http-429-unsaid"),
        pytest.param(meta(130429), 1.0, id="throughput"),
        pytest.param(meta(80007), 1.0, id="waba-limit"),
        pytest.param(meta(4), 1.0, id="app-limit"),
        pytest.param(meta(131056), None, id="pair-rate-is-per-recipient"),
        pytest.param(meta(131026), None, id="undeliverable"),
    ],
)
def test_rate_limits_pause_the_channel(
    raw: tuple[int, dict[str, str], bytes], pause: float | None
) -> None:
    assert classify(*raw, now=NOW).pause == pause


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("0", 0.0, id="zero"),
        pytest.param(" 12 ", 12.0, id="spaces"),
        pytest.param("1.5", 1.5, id="fraction"),
        pytest.param(email.utils.formatdate(NOW - 60, usegmt=True), 0.0, id="date-in-the-past"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param("User's number is part of an experiment", K.RECIPIENT, id="experiment"),
        pytest.param("Message undeliverable", K.RECIPIENT, id="undeliverable"),
        pytest.param("Recipient is not on WhatsApp", K.RECIPIENT, id="not-on-whatsapp"),
        pytest.param(
            "This message was not delivered to maintain healthy ecosystem engagement.",
            K.RECIPIENT,
            id="healthy-ecosystem-131049",
        ),
        pytest.param("Re-engagement message", K.RECIPIENT, id="re-engagement"),
        pytest.param("Template is paused due to low quality", K.TEMPLATE, id="template-paused"),
        pytest.param("(#132015) Template Paused", K.TEMPLATE, id="code-in-text"),
        pytest.param("Param text cannot have new-line/tab characters", K.TEMPLATE, id="param"),
        pytest.param("Rate limit hit", K.TRANSIENT, id="rate-limit"),
        pytest.param("Something went wrong", K.TRANSIENT, id="something-went-wrong"),
        pytest.param("Service unavailable", K.TRANSIENT, id="service-unavailable"),
        pytest.param("Business eligibility payment issue", K.ACCOUNT, id="payment"),
        pytest.param("error 131042", K.ACCOUNT, id="bare-known-code"),
        pytest.param("order 131999 failed", K.RECIPIENT, id="bare-unknown-number-ignored"),
        pytest.param("nobody knows", K.RECIPIENT, id="unknown-is-recipient"),
    ],
)
def test_classify_failed_ack(text: str, kind: K) -> None:
    assert classify_failed_ack(text) is kind


def test_every_table_code_has_its_class() -> None:
    for code, kind in META_CODES.items():
        assert code_kind(code) is kind
    assert code_kind(999_999) is None


@given(st.integers(min_value=100, max_value=599), st.binary(max_size=300))
def test_classify_never_raises(status: int, body: bytes) -> None:
    outcome = classify(status, {}, body, now=NOW)
    assert outcome.kind in set(K)
    if outcome.kind is K.ACCEPTED:
        assert outcome.provider_id


@given(
    st.dictionaries(
        st.sampled_from(["sent", "id", "message", "error", "code", "jobId"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-1, 10**6),
            st.text(max_size=20),
            st.dictionaries(
                st.sampled_from(["code", "message"]),
                st.one_of(st.integers(0, 10**6), st.text(max_size=10)),
            ),
        ),
    )
)
@example({"error": {"code": "²"}})  # a digit to str.isdigit, not to int(): once a ValueError
def test_classify_never_raises_on_json(body: dict[str, object]) -> None:
    classify(200, {}, orjson.dumps(body), now=NOW)
    classify(400, {}, orjson.dumps(body), now=NOW)
