"""A compiled send for channels whose ``send:`` keys are all templates: :class:`TemplatedSend`.

Every string of the block (at any depth of mappings and lists) is a template rendered per event;
other values are kept as written. The bundled webhook and e-mail channels use it; a plug-in
channel may too (``compile_send = staticmethod(TemplatedSend.compile)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from nextstep.engine.plugins.contract import SendCompiler

if TYPE_CHECKING:
    from nextstep.engine.rules.expressions import Scope


class _Template(Protocol):
    def render(self, scope: Scope) -> str: ...


class TemplatedSend:
    """The keys of a ``send:`` block (``channel`` aside), string leaves as templates."""

    __slots__ = ("content",)

    def __init__(self, content: Mapping[str, Any]) -> None:
        self.content = content

    @classmethod
    def compile(cls, block: Mapping[str, Any], compiler: SendCompiler) -> TemplatedSend:
        """Compile every key of ``block`` but ``channel`` (problems noted with ``compiler``)."""
        keys = [key for key in block if key != "channel"]
        return cls({key: compiler.structure(block[key], (key,)) for key in keys})

    def render(self, scope: Scope) -> dict[str, Any]:
        """Every key rendered for one event (raises RenderError naming rule and field)."""
        return {key: _render(value, scope) for key, value in self.content.items()}


def _render(value: Any, scope: Scope) -> Any:
    if isinstance(value, Mapping):
        return {k: _render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, scope) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return cast(_Template, value).render(scope)
