"""One compiled 1MSG send against the channel's templates (``nextstep templates --check``): the
template exists and is approved for its language, the namespace matches, the send fills as
many body variables as the template has, and the rule's TTL (``valid_for``) fits the
template's category (:mod:`onemsg.ttl`). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from nextstep.adapters.channels.onemsg.send import TemplateSend
from nextstep.adapters.channels.onemsg.templates import TemplateInfo
from nextstep.adapters.channels.onemsg.ttl import RANGES, category_problem
from nextstep.engine.plugins import CompiledSend
from nextstep.engine.plugins.abilities import ProviderTemplate, TemplateCheck

_RULE_VARIABLE = re.compile(r"<<\s*(\d+)\s*>>")
_META_VARIABLE = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def _source(send: TemplateSend, key: str) -> tuple[str, bool]:
    """A send field's source text and whether it is rendered per event."""
    compiled = send.fields.get(key)
    if compiled is None:
        return "", False
    return compiled.source, compiled.template is not None


def check_send(send: CompiledSend, templates: Sequence[ProviderTemplate]) -> TemplateCheck | None:
    """Compare one 1MSG send with the channel's templates (None for another kind of send)."""
    if not isinstance(send, TemplateSend):
        return None
    name, name_varies = _source(send, "template")
    language, language_varies = _source(send, "language")
    namespace, _ = _source(send, "namespace")
    if name_varies:
        unchecked = ("the template name is rendered per event: not checked",)
        return TemplateCheck(name, language, notes=unchecked)
    same_name = [t for t in templates if t.name == name]
    if language_varies:
        candidates = [t for t in same_name if t.approved]
        listed = ", ".join(sorted(t.language for t in candidates)) or "none"
        notes: tuple[str, ...] = (
            "the language is rendered per event: checked against every approved language "
            f"({listed})",
        )
        if not candidates:
            missing = (f"no approved template named {name}",)
            return TemplateCheck(name, language, missing, notes)
    else:
        candidates = [t for t in same_name if t.language == language]
        notes = ()
        if not candidates:
            others = ", ".join(sorted(t.language for t in same_name if t.approved))
            hint = f" (approved languages: {others})" if others else ""
            return TemplateCheck(name, language, (f"no template {name} in {language}{hint}",))
        if not candidates[0].approved:
            status = candidates[0].status or "not approved"
            return TemplateCheck(name, language, (f"template {name} ({language}) is {status}",))
    errors, more = _compare(send, namespace, candidates, per_language=language_varies)
    return TemplateCheck(name, language, errors, notes + more)


def _compare(
    send: TemplateSend,
    namespace: str,
    candidates: Sequence[ProviderTemplate],
    *,
    per_language: bool,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Namespace, variable count and text of a send against each candidate template."""
    errors: list[str] = []
    notes: list[str] = []
    wanted = len(send.params)
    for template in candidates:
        label = f" ({template.language})" if per_language else ""
        if namespace and template.namespace and namespace != template.namespace:
            errors.append(
                f"namespace {namespace} differs from the template's {template.namespace}{label}"
            )
        if wanted != template.variables:
            errors.append(
                f"the rule fills {wanted} body variable{'s' if wanted != 1 else ''}, "
                f"the template has {template.variables}{label}"
            )
        if not per_language and not _same_text(send.text, template.body):
            notes.append("the rule's text differs from the approved body (previews will differ)")
        if send.ttl is not None and isinstance(template, TemplateInfo):
            _check_ttl(send.ttl, template.category, label, errors, notes)
    return tuple(errors), tuple(notes)


def _check_ttl(ttl: int, category: str, label: str, errors: list[str], notes: list[str]) -> None:
    """The rule's TTL against the template's category: out of range is an error."""
    if category.upper() not in RANGES:
        shown = category or "none"
        notes.append(f"the template's category ({shown}) has no known TTL range: no TTL is sent")
        return
    problem = category_problem(ttl, category)
    if problem is not None:
        errors.append(problem + label)
    elif category.upper() == "MARKETING":
        notes.append("a marketing template's TTL applies only when 1MSG sends it by MM Lite")


def _same_text(rule_text: str, body: str) -> bool:
    as_meta = _RULE_VARIABLE.sub(lambda m: "{{" + m.group(1) + "}}", rule_text)
    normal = _META_VARIABLE.sub(lambda m: "{{" + m.group(1) + "}}", body)
    return " ".join(as_meta.split()) == " ".join(normal.split())
