"""The templates the sandbox serves: a built-in set matching the example rules, or a file.

The built-in records are deliberately as loose as the real ``GET /templates`` answer: status
``APPROVED`` or ``approved``, components as a list or as a JSON string, language as a string or
``{"code": …}``, one record with the namespace only under ``message_template_namespace``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from nextstep.adapters.channels.onemsg.templates import TemplateInfo, parse_templates

NAMESPACE = "3f1c7a2e_91b4_4c1e_a5a2_0c9d51e0c0de"
"""Namespace of every built-in template (the one the example rules use)."""

NEXT_STEP_TEXT = (
    'Hello, {{1}}! For your process "{{2}}", the next step is: {{3}} '
    "If you need help — we are here."
)
NEXT_STEP_SHORT_TEXT = "{{1}}, your next step: {{2}}"

_BUTTON = {
    "type": "BUTTONS",
    "buttons": [{"type": "URL", "text": "Open my account", "url": "https://example.com/account"}],
}

BUILTIN_TEMPLATES: tuple[Mapping[str, Any], ...] = (
    {
        "id": "1001",
        "name": "next_step",
        "language": "en",
        "namespace": NAMESPACE,
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": NEXT_STEP_TEXT}, _BUTTON],
    },
    {
        "id": "1002",
        "name": "next_step_short",
        "language": {"code": "en"},
        "message_template_namespace": NAMESPACE,
        "status": "approved",
        "category": "UTILITY",
        "components": json.dumps([{"type": "BODY", "text": NEXT_STEP_SHORT_TEXT}]),
    },
    {
        "id": "1003",
        "name": "next_step",
        "language": "es",
        "namespace": NAMESPACE,
        "status": "approved",
        "category": "UTILITY",
        "components": json.dumps(
            [
                {
                    "type": "BODY",
                    "text": 'Hola, {{1}}. En su trámite "{{2}}", el siguiente paso es: '
                    "{{3}} Si necesita ayuda, aquí estamos.",
                },
                _BUTTON,
            ]
        ),
    },
    {
        "id": "1004",
        "name": "case_closed",
        "language": "en",
        "namespace": NAMESPACE,
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Your case is closed. Thank you for your trust."}],
    },
    {
        "id": "1006",
        "name": "documents_received",
        "language": "en",
        "namespace": NAMESPACE,
        "status": "APPROVED",
        "category": "UTILITY",
        "components": json.dumps(
            [
                {
                    "type": "BODY",
                    "text": "Hi {{1}}, we received the documents for case {{2}}. {{3}} will "
                    "review them within 2 working days.",
                }
            ]
        ),
    },
    {
        "id": "1007",
        "name": "appointment_confirmed",
        "language": {"code": "es"},
        "namespace": NAMESPACE,
        "status": "approved",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hola {{1}}, tu cita en {{2}} es el {{3}}. Si no puedes venir, responde "
                "a este mensaje.",
            }
        ],
    },
    {
        "id": "1008",
        "name": "appointment_confirmed",
        "language": "en",
        "namespace": NAMESPACE,
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your appointment at {{2}} is on {{3}}. If you cannot come, "
                "reply to this message.",
            }
        ],
    },
    {
        "id": "1005",
        "name": "spring_promo",
        "language": "en",
        "namespace": NAMESPACE,
        "status": "PAUSED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "{{1}}, our spring offer is here."}],
    },
)


def load_templates(path: str | Path) -> tuple[Mapping[str, Any], ...]:
    """Template records from a YAML or JSON file: a list, or ``{"templates": [...]}``.

    Raises ValueError naming the file when it cannot be read as such.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        data: Any = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read templates: {exc}") from exc
    if isinstance(data, Mapping):
        data = data.get("templates")
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise ValueError(f"{path}: expected a list of templates or {{templates: [...]}}")
    return tuple(data)


def template_index(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], TemplateInfo]:
    """The records keyed on ``(name, language)``."""
    return {t.key: t for t in parse_templates(records)}


def listing(records: Sequence[Mapping[str, Any]], limit: int | None, offset: int) -> dict[str, Any]:
    """The ``GET /templates`` answer body for one page."""
    page = records[offset : None if limit is None else offset + limit]
    return {"total": len(records), "templates": list(page)}
