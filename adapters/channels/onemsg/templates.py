"""Read 1MSG template records as they really come (pure).

``GET /templates`` is loose (reference §4.1): ``status`` is ``approved`` or ``APPROVED``,
``components`` may be a JSON string, ``language`` a string or ``{"code": …}``, the namespace sits
under ``namespace`` or ``message_template_namespace`` (or only on sibling templates), and names
repeat across languages, so templates are keyed on ``(name, language)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from nextstep.engine.plugins import TemplateButton

_META_VARIABLE = re.compile(r"\{\{\s*(\d+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """One template of the channel, normalised."""

    name: str
    language: str
    namespace: str
    status: str  # lower case: approved, pending, rejected, paused…
    category: str
    body: str  # the BODY component's text, variables written {{n}}
    variables: int  # distinct body variables
    buttons: tuple[TemplateButton, ...] = ()  # fixed in the approved template

    @property
    def approved(self) -> bool:
        """True when the template can be sent."""
        return self.status == "approved"

    @property
    def key(self) -> tuple[str, str]:
        """``(name, language)``: names repeat across languages."""
        return (self.name, self.language)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``nextstep templates --json``)."""
        return {
            "name": self.name,
            "language": self.language,
            "namespace": self.namespace,
            "status": self.status,
            "category": self.category,
            "body": self.body,
            "variables": self.variables,
            "buttons": [b.as_dict() for b in self.buttons],
        }


def body_variables(text: str) -> int:
    """Number of distinct ``{{n}}`` variables in an approved body text."""
    return len(set(_META_VARIABLE.findall(text)))


def components_of(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A template's components, decoding them when they arrive as a JSON string."""
    components: Any = raw.get("components")
    if isinstance(components, str | bytes):
        try:
            components = orjson.loads(components)
        except orjson.JSONDecodeError:
            return []
    if not isinstance(components, list):
        return []
    return [c for c in components if isinstance(c, Mapping)]


def language_of(raw: Mapping[str, Any]) -> str:
    """The language code, from ``"en"`` or ``{"code": "en"}``."""
    language = raw.get("language")
    if isinstance(language, Mapping):
        language = language.get("code")
    return str(language or "")


def parse_template(raw: Any) -> TemplateInfo | None:
    """A :class:`TemplateInfo` from one raw record; None when it has no name."""
    if not isinstance(raw, Mapping) or not raw.get("name"):
        return None
    body = next(
        (
            str(c.get("text") or "")
            for c in components_of(raw)
            if str(c.get("type", "")).upper() == "BODY"
        ),
        "",
    )
    namespace = raw.get("namespace") or raw.get("message_template_namespace") or ""
    return TemplateInfo(
        name=str(raw["name"]),
        language=language_of(raw),
        namespace=str(namespace),
        status=str(raw.get("status") or "").lower(),
        category=str(raw.get("category") or "").upper(),
        body=body,
        variables=body_variables(body),
        buttons=buttons_of(components_of(raw)),
    )


def buttons_of(components: Iterable[Mapping[str, Any]]) -> tuple[TemplateButton, ...]:
    """The buttons of a ``BUTTONS`` component (Meta's shape: ``{"type": "BUTTONS", "buttons":
    [{"type": "URL", "text", "url"}, {"type": "QUICK_REPLY", "text"}…]}``); others are skipped."""
    found: list[TemplateButton] = []
    for component in components:
        if str(component.get("type", "")).upper() != "BUTTONS":
            continue
        buttons = component.get("buttons")
        for button in buttons if isinstance(buttons, list) else []:
            if isinstance(button, Mapping) and button.get("text"):
                kind = str(button.get("type") or "").upper()
                url = button.get("url") if kind == "URL" else None
                found.append(TemplateButton(kind, str(button["text"]), str(url or "")))
    return tuple(found)


def parse_templates(records: Iterable[Any]) -> list[TemplateInfo]:
    """Every readable record; a missing namespace is taken from its siblings when they agree."""
    templates = [t for t in (parse_template(r) for r in records) if t is not None]
    namespaces = {t.namespace for t in templates if t.namespace}
    if len(namespaces) == 1:
        shared = namespaces.pop()
        templates = [t if t.namespace else replace(t, namespace=shared) for t in templates]
    return templates
