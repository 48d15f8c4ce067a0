"""SmtpChannel against a real aiosmtpd server on loopback (its own thread)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from nextstep.adapters.channels.smtp import SmtpChannel, smtp_outcome
from nextstep.engine.clock import FakeClock
from nextstep.engine.errors import ConfigError
from nextstep.engine.model import Message, OutcomeKind

SENDER = "notifications@example.com"


class Handler:
    """Records mail; replies as scripted per recipient, sender or DATA."""

    def __init__(self) -> None:
        self.mail: list[Envelope] = []
        self.rcpt_replies: dict[str, str] = {}
        self.mail_reply: str | None = None
        self.data_reply: str | None = None
        self.data_delay = 0.0

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self.data_reply
        self.mail.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_login(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"right"
    return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535 itself


def serve(handler: Handler, **options: Any) -> Iterator[Controller]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def server(handler: Handler) -> Iterator[Controller]:
    yield from serve(handler)


def channel(port: int, clock: FakeClock, **extra: Any) -> SmtpChannel:
    config = {"host": "127.0.0.1", "port": port, "from": SENDER, "timeout": 5, **extra}
    return SmtpChannel("mail", config, clock=clock)


def message(to: str = "maria@example.org") -> Message:
    return Message(
        "mail",
        "34600111222",
        {"to": to, "subject": "Your next step", "body": "Upload documents by June 20."},
    )


async def test_sends_a_mail(server: Controller, handler: Handler, clock: FakeClock) -> None:
    outcome = await channel(server.port, clock).send(message())
    assert outcome.kind is OutcomeKind.ACCEPTED and outcome.code == 250
    [envelope] = handler.mail
    assert (envelope.mail_from, envelope.rcpt_tos) == (SENDER, ["maria@example.org"])
    mail = message_from_bytes(envelope.content or b"")
    assert mail["Subject"] == "Your next step" and mail["From"] == SENDER
    assert mail["Message-ID"] == outcome.provider_id
    assert "Upload documents by June 20." in mail.get_payload()
    assert SmtpChannel.preview(message(), {}).body["subject"] == "Your next step"


@pytest.mark.parametrize(
    ("where", "reply", "kind"),
    [
        pytest.param("rcpt", "550 5.1.1 No such user", OutcomeKind.RECIPIENT, id="rcpt-550"),
        pytest.param("rcpt", "451 4.3.0 Try again later", OutcomeKind.TRANSIENT, id="rcpt-451"),
        pytest.param("data", "554 5.6.0 Message refused", OutcomeKind.RECIPIENT, id="data-554"),
        pytest.param("data", "452 4.3.1 Storage full", OutcomeKind.TRANSIENT, id="data-452"),
        pytest.param("mail", "553 5.7.1 Sender not allowed", OutcomeKind.ACCOUNT, id="mail-553"),
        pytest.param("mail", "421 4.7.0 Busy", OutcomeKind.TRANSIENT, id="mail-421"),
    ],
)
async def test_server_replies(
    server: Controller,
    handler: Handler,
    clock: FakeClock,
    where: str,
    reply: str,
    kind: OutcomeKind,
) -> None:
    if where == "rcpt":
        handler.rcpt_replies["maria@example.org"] = reply
    elif where == "data":
        handler.data_reply = reply
    else:
        handler.mail_reply = reply
    outcome = await channel(server.port, clock).send(message())
    assert outcome.kind is kind, outcome.reason
    assert outcome.code == int(reply[:3])


async def test_refused_connection_is_transient(clock: FakeClock) -> None:
    outcome = await channel(free_port(), clock).send(message())
    # Nothing was handed over and the server is down: the circuit opens (issue 15.9).
    assert (outcome.kind, outcome.unreachable) == (OutcomeKind.TRANSIENT, True)
    assert await channel(free_port(), clock).probe() is False


async def test_no_reply_after_data_is_in_doubt(
    server: Controller, handler: Handler, clock: FakeClock
) -> None:
    handler.data_delay = 1.0
    outcome = await channel(server.port, clock, timeout=0.2).send(message())
    assert outcome.kind is OutcomeKind.IN_DOUBT, outcome.reason


async def test_login(handler: Handler, clock: FakeClock) -> None:
    for controller in serve(
        handler, authenticator=check_login, auth_require_tls=False, auth_exclude_mechanism=["LOGIN"]
    ):
        good = await channel(controller.port, clock, username="u", password="right").send(message())
        bad = await channel(controller.port, clock, username="u", password="wrong").send(message())
        probe = await channel(controller.port, clock, username="u", password="right").probe()
    assert good.kind is OutcomeKind.ACCEPTED
    assert bad.kind is OutcomeKind.ACCOUNT and bad.code == 535
    assert probe is True


async def test_starttls_required_but_not_offered(server: Controller, clock: FakeClock) -> None:
    outcome = await channel(server.port, clock, starttls=True).send(message())
    assert outcome.kind is OutcomeKind.ACCOUNT, outcome.reason


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
async def test_starttls(tmp_path: Path, handler: Handler, clock: FakeClock) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    for controller in serve(handler, tls_context=context, require_starttls=True):
        outcome = await channel(controller.port, clock, starttls=True, validate_certs=False).send(
            message()
        )
    assert outcome.kind is OutcomeKind.ACCEPTED, outcome.reason
    assert len(handler.mail) == 1


def test_bare_smtp_exception_outcomes() -> None:
    import aiosmtplib

    assert smtp_outcome(aiosmtplib.SMTPServerDisconnected("x"), "envelope").kind is (
        OutcomeKind.TRANSIENT
    )
    # Dropped after the connection was made: one message's trouble, not the server down.
    assert not smtp_outcome(aiosmtplib.SMTPServerDisconnected("x"), "envelope").unreachable
    assert smtp_outcome(aiosmtplib.SMTPServerDisconnected("x"), "data").kind is (
        OutcomeKind.IN_DOUBT
    )
    assert smtp_outcome(aiosmtplib.SMTPResponseException(554, "no"), "connect").kind is (
        OutcomeKind.ACCOUNT
    )


def test_config_problems(clock: FakeClock) -> None:
    with pytest.raises(ConfigError) as caught:
        SmtpChannel("mail", {"port": 25}, clock=clock)
    assert {p.path for p in caught.value.problems} == {"channels.mail.host", "channels.mail.from"}
