"""The e-mail channel (``type: smtp``): one plain-text message per notification, via aiosmtplib.

Config: ``host`` and ``from`` (required); ``port`` (587 with STARTTLS, 465 with ``tls``, else
25); ``starttls`` (true: required, false: never, absent: when the server offers it); ``tls``
(implicit TLS); ``username``/``password`` (optional; never logged); ``timeout`` (10 s);
``validate_certs`` (true).

A message's fields: ``to`` (else the notification's recipient), ``subject``, ``body``.

Replies: 4xx is transient. 5xx is permanent: at RCPT or DATA for this message (recipient
class); at connect, MAIL FROM or authentication for the whole channel (account). A network
failure before the message was handed over is transient; a timeout or a dropped connection
while the server holds the complete message (during DATA) is in doubt. Each send uses its own
connection, closed at once: notification mail is sparse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, ClassVar, Literal

import aiosmtplib

from nextstep.engine.clock import Clock
from nextstep.engine.durations import parse_duration
from nextstep.engine.errors import ConfigError, Problem
from nextstep.engine.metrics import PROVIDER_ANSWERS
from nextstep.engine.model import Message, Outcome, OutcomeKind
from nextstep.engine.plugins import ChannelTraits, Preview, SendCompiler, TemplatedSend
from nextstep.engine.redact import mask_phones_in

log = logging.getLogger(__name__)

Phase = Literal["connect", "envelope", "data"]


def smtp_outcome(exc: Exception, phase: Phase) -> Outcome:
    """Classify an aiosmtplib or network error raised during ``phase`` (pure)."""
    name = type(exc).__name__
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Outcome(OutcomeKind.ACCOUNT, f"authentication refused: {exc}", code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reason = f"SMTP {exc.code} at {phase}: {exc.message}"
        if 400 <= exc.code < 500:
            return Outcome(OutcomeKind.TRANSIENT, reason, code=exc.code)
        channel_wide = phase == "connect" or isinstance(exc, aiosmtplib.SMTPSenderRefused)
        kind = OutcomeKind.ACCOUNT if channel_wide else OutcomeKind.RECIPIENT
        return Outcome(kind, reason, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or type(exc) is aiosmtplib.SMTPException:
        # aiosmtplib's bare SMTPException: STARTTLS or AUTH asked for but not offered.
        return Outcome(OutcomeKind.ACCOUNT, f"the server cannot do what the channel asks: {exc}")
    if phase == "data":
        return Outcome(OutcomeKind.IN_DOUBT, f"no reply after the message was sent: {name}: {exc}")
    # A connection that could not be made (refused, DNS, TLS, timeout): the server is down.
    down = phase == "connect" and isinstance(exc, OSError)
    return Outcome(OutcomeKind.TRANSIENT, f"not sent: {name}: {exc}", unreachable=down)


CONFIG_SCHEMA: Mapping[str, Any] = {
    "description": "Send an e-mail through an SMTP server.",
    "type": "object",
    "additionalProperties": False,
    "required": ["host", "from"],
    "properties": {
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "from": {"type": "string", "minLength": 3},
        "username": {"$ref": "#/$defs/secret"},
        "password": {"$ref": "#/$defs/secret"},
        "starttls": {"type": "boolean"},
        "timeout": {"$ref": "#/$defs/duration"},
        "tls": {"type": "boolean", "description": "Implicit TLS (port 465)."},
        "validate_certs": {"type": "boolean", "default": True},
    },
}

SEND_SCHEMA: Mapping[str, Any] = {
    "description": "A plain-text e-mail.",
    "type": "object",
    "required": ["to", "subject", "body"],
    "properties": {
        "to": {"$ref": "#/$defs/template", "description": "smtp: the e-mail address."},
        "subject": {"$ref": "#/$defs/template"},
        "body": {"description": "smtp: the mail text."},
    },
}


def email_fields(message: Message) -> dict[str, str]:
    """``to``, ``subject`` and ``body`` of the mail (the channel's preview)."""
    fields = message.fields
    return {
        "to": str(fields.get("to") or message.to),
        "subject": str(fields.get("subject") or ""),
        "body": str(fields.get("body") or ""),
    }


def _default_port(starttls: bool | None, tls: bool) -> int:
    if tls:
        return 465
    return 587 if starttls else 25


class SmtpChannel:
    """Send notification e-mail through one SMTP server."""

    kind: ClassVar[str] = "smtp"
    config_schema: ClassVar[Mapping[str, Any]] = CONFIG_SCHEMA
    send_schema: ClassVar[Mapping[str, Any]] = SEND_SCHEMA
    traits: ClassVar[ChannelTraits] = ChannelTraits()

    @staticmethod
    def compile_send(block: Mapping[str, Any], compiler: SendCompiler) -> TemplatedSend:
        """Every key a template; the body must be text."""
        if "body" in block and not isinstance(block["body"], str):
            compiler.problem(("body",), "an smtp body is text (a template string)")
        return TemplatedSend.compile(block, compiler)

    @staticmethod
    def preview(message: Message, settings: Mapping[str, Any]) -> Preview:
        """The mail's ``to``, ``subject`` and ``body``."""
        return Preview(f"smtp channel {message.channel}", email_fields(message))

    def __init__(self, name: str, config: Mapping[str, Any], *, clock: Clock) -> None:
        self.name = name
        self._clock = clock
        missing = [key for key in ("host", "from") if not config.get(key)]
        if missing:
            raise ConfigError(
                [
                    Problem("", 0, 0, None, f"channels.{name}.{key}", "is required")
                    for key in missing
                ]
            )
        starttls = config.get("starttls")
        tls = bool(config.get("tls", False))
        self._sender = str(config["from"])
        self._domain = self._sender.rpartition("@")[2] or "localhost"
        self._connect: dict[str, Any] = {
            "hostname": str(config["host"]),
            "port": int(config.get("port") or _default_port(starttls, tls)),
            "use_tls": tls,
            "start_tls": None if starttls is None else bool(starttls),
            "timeout": parse_duration(config.get("timeout", 10.0)),
            "validate_certs": bool(config.get("validate_certs", True)),
            "username": config.get("username") or None,
            "password": config.get("password") or None,
        }
        self._answers = {kind: PROVIDER_ANSWERS.labels(name, kind.value) for kind in OutcomeKind}

    def _email(self, message: Message) -> tuple[EmailMessage, str]:
        fields = email_fields(message)
        mail = EmailMessage()
        message_id = make_msgid(domain=self._domain)
        mail["From"] = self._sender
        mail["To"] = fields["to"]
        mail["Subject"] = fields["subject"]
        mail["Date"] = formatdate(self._clock.now(), localtime=False, usegmt=True)
        mail["Message-ID"] = message_id
        mail.set_content(fields["body"])
        return mail, message_id

    async def send(self, message: Message) -> Outcome:
        """Send one mail; the classified reply (never raises for a server reply)."""
        try:
            mail, message_id = self._email(message)
        except (ValueError, TypeError) as exc:
            outcome = Outcome(OutcomeKind.TEMPLATE, f"not sent: {exc}")
        else:
            outcome = await self._deliver(mail, message_id)
        self._answers[outcome.kind].inc()
        if not outcome.ok:
            log.info(
                "smtp %s: %s: %s", self.name, outcome.kind.value, mask_phones_in(outcome.reason)
            )
        return outcome

    async def _deliver(self, mail: EmailMessage, message_id: str) -> Outcome:
        smtp = aiosmtplib.SMTP(**self._connect)
        phase: Phase = "connect"
        try:
            await smtp.connect()
            phase = "envelope"
            await smtp.mail(self._sender)
            await smtp.rcpt(str(mail["To"]))
            phase = "data"
            reply = await smtp.data(mail.as_bytes())
        except (aiosmtplib.SMTPException, OSError) as exc:
            return smtp_outcome(exc, phase)
        finally:
            await _close(smtp)
        return Outcome(
            OutcomeKind.ACCEPTED, "accepted", message_id, code=reply.code, answer=reply.message
        )

    async def probe(self) -> bool:
        """True when the server accepts a connection (and the login, if configured)."""
        smtp = aiosmtplib.SMTP(**self._connect)
        try:
            await smtp.connect()
            await smtp.noop()
        except (aiosmtplib.SMTPException, OSError):
            return False
        finally:
            await _close(smtp)
        return True

    async def aclose(self) -> None:
        """Nothing to close: each send uses its own connection."""


async def _close(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
