"""Scripted outcomes per recipient: built in by number suffix, or from a YAML scenario file.

Built-in scripts (a phone number ending in…):

======  =====================================================================================
suffix  what the sandbox does
======  =====================================================================================
0001    answers Meta 131026 (message undeliverable, a recipient failure), every time
0002    answers HTTP 500 twice, then accepts (transient)
0003    answers HTTP 429 with ``Retry-After: 2`` once, then accepts
0004    answers Meta 131042 (business eligibility payment issue: account failure), every time
0005    answers only after ``slow`` seconds (default 15 s, past a 10 s read timeout), accepted:
        the client sees a read timeout (in doubt) although the message was sent and acked
0006    accepts, then acks ``sent`` and ``failed`` "User's number is part of an experiment"
0007    accepts, posts no ack at all; ``hookInfo`` still reports sent, delivered, read
0008    accepts, acks out of order with duplicates: sent, sent, read, delivered, read
0009    answers HTTP 401 ``{"error": "Wrong token…"}`` (account failure), every time
0010    accepts, acks sent; the phone stays offline, so nothing more comes, unless the send
        had ``messageSendTtlSeconds``: then failed 131026 when it runs out
other   accepts, acks sent → delivered → read
======  =====================================================================================

A scenario file adds scripts (they win over the built-ins; the longest matching suffix wins)
and may start the channel ``disconnected``::

    status: disconnected        # GET /status answers this…
    status_recover_after: 3     # …for 3 probes, then "connected"
    builtin: true               # keep the built-in suffix scripts (default)
    recipients:
      - match: "34600111222"    # a suffix or a whole number
        answer: {meta: 131026}  # always this answer
      - match: "4242"
        answers: [{status: 500}, {status: 429, retry_after: 5}]   # in turn, then accepted
      - match: "5555"
        delay: 2s               # answer late, then accept
        acks: [sent, {status: failed, error: "Message undeliverable", code: 131026}]
      - match: "7777"
        post_acks: false        # produce statuses (hookInfo) without posting them
      - match: "6666"
        offline: 2m             # the phone is unreachable for 2 minutes (true: for ever);
                                # a message whose TTL is shorter fails when it runs out

An answer takes ``status`` (HTTP), ``meta`` (a passed-through Meta error code), ``message``
(``sent:false`` text on a 200, ``{"message"}`` otherwise), ``error`` (``{"error"}``),
``retry_after`` (header value; a number, or ``http-date:N`` for an HTTP-date N seconds ahead),
``delay`` (wait, then answer: an accepting answer accepts only then) and ``hold`` (accept at
once, answer ``hold`` later; ``forever``: never, until the sandbox stops — the client's read
timeout after the provider took the message).

An ack step is a status or ``{status, error, code, late, post, repeat}``: ``late: 2s`` posts it
that much after it happened (``hookInfo`` has it at its time; later steps are not held back,
so a late ack arrives out of order), ``post: false`` never posts it (``hookInfo`` only: a
missing ack), ``repeat: 3`` posts the same ack three times in separate calls (a provider
retrying a webhook that was in fact received).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nextstep.engine.durations import parse_duration

META_ERRORS: Mapping[int, tuple[str, str]] = {
    100: ("Invalid parameter", "Invalid parameter"),
    131026: ("Message undeliverable", "Message Undeliverable."),
    131042: (
        "Business eligibility payment issue",
        "Message failed to send because there were one or more errors related to your payment "
        "method.",
    ),
    130472: ("User's number is part of an experiment", "User's number is part of an experiment"),
    130429: (
        "Rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number in a short period of time",
    ),
    131056: ("(Business Account, Consumer Account) pair rate limit hit", "Pair rate limit hit"),
    131000: ("Something went wrong", "Message failed to send due to an unknown error."),
    131008: ("Required parameter is missing", "Required parameter is missing"),
    132000: ("Number of parameters does not match the expected number of params", ""),
    132001: ("Template name does not exist in the translation", ""),
    132005: ("Translated text too long", "Hydrated text too long"),
    132015: ("Template is paused", "Template is paused due to low quality"),
    132018: (
        "There was an issue with the parameters in your template.",
        "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
    ),
}
"""Title and default ``error_data.details`` of the Meta codes the sandbox can answer."""

EXPERIMENT = "User's number is part of an experiment"


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted synchronous answer to ``sendTemplate``; the default accepts."""

    status: int = 200
    meta: int | None = None
    message: str | None = None
    error: str | None = None
    retry_after: str | None = None
    delay: float = 0.0  # answer late; an accepting answer accepts when it answers
    hold: float = 0.0  # accept at once, answer this much later (math.inf: never)

    @property
    def accepts(self) -> bool:
        """True when this answer accepts the message (possibly late)."""
        return (
            200 <= self.status < 300
            and self.meta is None
            and self.message is None
            and self.error is None
        )


@dataclass(frozen=True, slots=True)
class AckStep:
    """One status the sandbox produces for an accepted message."""

    status: str
    error: str = ""
    code: int | None = None
    late: float = 0.0  # seconds between the status happening and its webhook post
    post: bool = True  # False: in hookInfo only, never posted
    repeat: int = 1  # webhook calls carrying this same ack


DEFAULT_ACKS = (AckStep("sent"), AckStep("delivered"), AckStep("read"))


@dataclass(frozen=True, slots=True)
class Script:
    """What happens to sends to numbers ending in ``match``."""

    match: str
    answers: tuple[Answer, ...] = ()
    repeat: bool = False  # True: the last answer repeats forever; False: then accept
    acks: tuple[AckStep, ...] = DEFAULT_ACKS
    post_acks: bool = True
    offline: float | None = None  # seconds the phone is unreachable (math.inf: for ever)

    def answer(self, attempt: int) -> Answer:
        """The answer to the ``attempt``-th send (0 first) to a matching number."""
        if attempt < len(self.answers):
            return self.answers[attempt]
        if self.repeat and self.answers:
            return self.answers[-1]
        return Answer()


@dataclass(frozen=True, slots=True)
class Scenario:
    """The scripts in force and the channel's starting status."""

    scripts: tuple[Script, ...] = ()
    status: str = "connected"
    status_recover_after: int | None = None

    def script_for(self, phone: str) -> Script | None:
        """The script of the longest suffix matching ``phone`` (file scripts come first)."""
        best: Script | None = None
        for script in self.scripts:
            if phone.endswith(script.match) and (
                best is None or len(script.match) > len(best.match)
            ):
                best = script
        return best


def builtin_scripts(slow: float = 15.0) -> tuple[Script, ...]:
    """The suffix table of the module docstring; ``slow`` is the 0005 answer delay."""
    server_error = Answer(status=500, message="Internal server error")
    return (
        Script("0001", (Answer(status=400, meta=131026),), repeat=True),
        Script("0002", (server_error, server_error)),
        Script("0003", (Answer(status=429, error="Too many requests", retry_after="2"),)),
        Script("0004", (Answer(status=400, meta=131042),), repeat=True),
        Script("0005", (Answer(delay=slow),), repeat=True),
        Script("0006", acks=(AckStep("sent"), AckStep("failed", EXPERIMENT, 130472))),
        Script("0007", post_acks=False),
        Script(
            "0008",
            acks=(
                AckStep("sent"),
                AckStep("sent"),
                AckStep("read"),
                AckStep("delivered"),
                AckStep("read"),
            ),
        ),
        Script(
            "0009",
            (
                Answer(
                    status=401,
                    error="Wrong token for channel. Please provide token as a GET parameter.",
                ),
            ),
            repeat=True,
        ),
        Script("0010", offline=math.inf),
    )


def default_scenario(slow: float = 15.0) -> Scenario:
    """Only the built-in scripts, channel connected."""
    return Scenario(builtin_scripts(slow))


def load_scenario(path: str | Path, *, slow: float = 15.0) -> Scenario:
    """Read a scenario file (see the module docstring); ValueError names the file and entry."""
    try:
        data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the scenario: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a scenario is a mapping (recipients, status…)")
    try:
        return scenario_from(data, slow=slow)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def scenario_from(data: Mapping[str, Any], *, slow: float = 15.0) -> Scenario:
    """A :class:`Scenario` from already-parsed YAML."""
    entries = data.get("recipients") or []
    if not isinstance(entries, list):
        raise ValueError("recipients: expected a list")
    scripts = [_script(i, entry) for i, entry in enumerate(entries)]
    if data.get("builtin", True):
        scripts.extend(builtin_scripts(slow))
    recover = data.get("status_recover_after")
    return Scenario(
        tuple(scripts),
        status=str(data.get("status", "connected")),
        status_recover_after=None if recover is None else int(recover),
    )


def _script(index: int, entry: Any) -> Script:
    if not isinstance(entry, Mapping) or not str(entry.get("match", "")).strip():
        raise ValueError(f"recipients[{index}]: needs a 'match' (a number or its suffix)")
    delay = parse_duration(entry.get("delay", 0))
    answers: tuple[Answer, ...]
    if "answer" in entry:
        answers, repeat = (_answer(entry["answer"], delay),), True
    else:
        answers = tuple(_answer(a, delay) for a in entry.get("answers") or ())
        repeat = bool(entry.get("repeat", False))
        if not answers and delay:
            answers, repeat = (Answer(delay=delay),), True
    acks = tuple(_ack(a) for a in entry["acks"]) if "acks" in entry else DEFAULT_ACKS
    return Script(
        str(entry["match"]).strip(),
        answers,
        repeat,
        acks,
        bool(entry.get("post_acks", True)),
        _offline(entry.get("offline")),
    )


def _offline(value: Any) -> float | None:
    """``offline:`` of a recipient: true (for ever), false/absent, or a duration."""
    if value is None or value is False:
        return None
    if value is True:
        return math.inf
    return parse_duration(value)


def _answer(spec: Any, delay: float) -> Answer:
    if not isinstance(spec, Mapping):
        raise ValueError(f"an answer is a mapping, not {spec!r}")
    meta = spec.get("meta")
    status = int(spec.get("status", 400 if meta is not None else 200))
    retry_after = spec.get("retry_after")
    return Answer(
        status=status,
        meta=None if meta is None else int(meta),
        message=None if spec.get("message") is None else str(spec["message"]),
        error=None if spec.get("error") is None else str(spec["error"]),
        retry_after=None if retry_after is None else str(retry_after),
        delay=parse_duration(spec.get("delay", delay)),
        hold=_hold(spec.get("hold")),
    )


def _hold(value: Any) -> float:
    """``hold:`` of an answer: absent, a duration, or ``forever``/true (never answered)."""
    if value is None or value is False:
        return 0.0
    if value is True or value == "forever":
        return math.inf
    return parse_duration(value)


def _ack(spec: Any) -> AckStep:
    if isinstance(spec, str):
        return AckStep(spec)
    if not isinstance(spec, Mapping) or "status" not in spec:
        raise ValueError(f"an ack is a status or {{status, error, code}}, not {spec!r}")
    code = spec.get("code")
    repeat = spec.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 10:
        raise ValueError(f"an ack's repeat is 1 to 10, not {repeat!r}")
    return AckStep(
        str(spec["status"]),
        str(spec.get("error", "")),
        None if code is None else int(code),
        late=parse_duration(spec.get("late", 0)),
        post=bool(spec.get("post", True)),
        repeat=repeat,
    )


def scripts_summary(scripts: Sequence[Script]) -> list[str]:
    """One line per script, for ``nextstep sandbox`` to print at start."""
    lines = []
    for script in scripts:
        answers = ", ".join(_describe(a) for a in script.answers) or "accept"
        tail = " (repeats)" if script.repeat else ""
        if script.repeat and script.answers and not script.answers[-1].accepts:
            acks = "none (never accepted)"
        elif script.post_acks:
            acks = " → ".join(a.status for a in script.acks)
        else:
            acks = "none posted (hookInfo has them)"
        if script.offline is not None and math.isinf(script.offline):
            acks = "sent only (offline for ever); failed 131026 when a TTL runs out"
        elif script.offline is not None:
            acks += f" (offline {script.offline:g}s first; failed 131026 if a TTL runs out)"
        lines.append(f"…{script.match}: {answers}{tail}; acks: {acks}")
    return lines


def _describe(answer: Answer) -> str:
    if answer.accepts and answer.hold:
        held = "never" if math.isinf(answer.hold) else f"after {answer.hold:g}s"
        return f"accept, answer {held}"
    if answer.accepts:
        return f"accept after {answer.delay:g}s" if answer.delay else "accept"
    if answer.meta is not None:
        return f"Meta {answer.meta}"
    return f"HTTP {answer.status}"
