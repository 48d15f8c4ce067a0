"""A 1MSG ``send:`` block compiled: the template's name, namespace and language (templates),
the approved body ``text`` and the templates of its variables ``params`` (``<<1>>`` first).

At load, the ``<<n>>`` variables of ``text`` and the keys of ``params`` must match both ways, and
the rule's ``valid_for`` must be one the provider can take as a TTL (:mod:`onemsg.ttl`). At
render, each parameter is repaired or refused by WhatsApp's rules (:mod:`onemsg.whatsapp`),
the body is filled and must stay within WhatsApp's limit; with a ``valid_for``, the fields also
carry ``ttl`` (the rule's TTL, seconds) and ``valid_until`` (Unix seconds) for the channel.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nextstep.adapters.channels.onemsg.ttl import offline_problem, rule_ttl
from nextstep.adapters.channels.onemsg.whatsapp import (
    MAX_BODY,
    WhatsAppRuleError,
    check_body,
    clean_param,
    fill,
    variable_problems,
)
from nextstep.engine.errors import RenderError
from nextstep.engine.plugins import SendCompiler, Whitespace
from nextstep.engine.rules.schema import show

if TYPE_CHECKING:
    from nextstep.engine.rules.expressions import CompiledTemplate, Scope

NAMED = ("template", "namespace", "language")


@dataclass(frozen=True, eq=False, slots=True)
class TemplateSend:
    """A compiled 1MSG send; :meth:`render` gives ``template``, ``namespace``, ``language``,
    ``params`` (list of text), ``text`` (the body filled) and, when the rule has a TTL,
    ``ttl`` and ``valid_until``."""

    rule_id: str
    path: str  # where the block is, for messages
    whitespace: Whitespace
    fields: Mapping[str, CompiledTemplate]  # template, namespace, language
    text: str
    params: tuple[CompiledTemplate, ...]
    ttl: int | None = None  # the rule's messageSendTtlSeconds (onemsg.ttl.rule_ttl)
    valid_for: float = 0.0

    def render(self, scope: Scope) -> dict[str, Any]:
        """The fields of the message for one event; RenderError naming the field at fault."""
        params = []
        for template in self.params:
            value = template.render(scope)
            try:
                params.append(clean_param(value, self.whitespace))
            except WhatsAppRuleError as exc:
                raise RenderError(self.rule_id, template.field, f"{show(value)} {exc}") from None
        text = fill(self.text, params)
        if len(text) > MAX_BODY:
            try:
                check_body(text)
            except WhatsAppRuleError as exc:
                raise RenderError(self.rule_id, f"{self.path}.text", str(exc)) from None
        fields: dict[str, Any] = {}
        for key, t in self.fields.items():
            fields[key] = t.source if t.template is None else t.render(scope)
        fields["params"] = params
        fields["text"] = text
        if self.ttl is not None:
            fields["ttl"] = self.ttl
            fields["valid_until"] = _now(scope) + self.valid_for
        return fields


def _now(scope: Scope) -> float:
    """The render's time (the scope's ``now``), as the notification's ``valid_until`` uses."""
    now = scope.names.get("now")
    return now.timestamp() if isinstance(now, datetime.datetime) else time.time()


def compile_send(block: Mapping[str, Any], compiler: SendCompiler) -> TemplateSend | None:
    """Compile a 1MSG ``send:`` block; None when it cannot be (each problem noted)."""
    fields = {}
    for key in NAMED:
        compiled = compiler.template(block.get(key), (key,))
        if compiled is not None:
            fields[key] = compiled
    text = block.get("text")
    raw_params = block.get("params", {})
    if not isinstance(text, str) or not isinstance(raw_params, Mapping):
        return None
    numbers = {int(k) for k in raw_params if str(k).isdecimal()}
    for param, message in variable_problems(text, numbers):
        compiler.problem(("text",) if param is None else ("params", str(param)), message)
    params = tuple(
        compiler.template(raw_params[str(n)], ("params", str(n))) for n in sorted(numbers)
    )
    if any(p is None for p in params):
        return None
    compiled_params = tuple(p for p in params if p is not None)
    problem = offline_problem(compiler.valid_for)
    if problem is not None:
        compiler.problem((), problem)
        return None
    return TemplateSend(
        compiler.rule_id,
        compiler.path,
        compiler.whitespace,
        fields,
        text,
        compiled_params,
        rule_ttl(compiler.valid_for),
        compiler.valid_for or 0.0,
    )
