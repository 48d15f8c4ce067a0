"""Jinja2 for rules: one sandboxed environment, everything compiled once at load.

The environment (:mod:`.sandbox`) is an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``
and no globals that also bounds what a template may build and how long it may loop: a template
sees only ``event``, ``trigger``, ``now`` (and ``failure`` in fallbacks). Names, filters and
tests are checked when a rule loads (:mod:`.treecheck`), so ``evnt.phone`` is a validation
problem, not a failed send. At render time a missing field, a bad date or a sandbox refusal
raises :class:`RenderError` naming the rule, the field and the missing name (``'event.due' is
undefined``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, UndefinedError

from nextstep.engine.errors import RenderError
from nextstep.engine.rules import lookups, sandbox, treecheck
from nextstep.engine.rules.compat import Context
from nextstep.engine.rules.schema import did_you_mean
from nextstep.engine.rules.treecheck import TemplateProblem as TemplateProblem

NAMES = frozenset({"event", "trigger", "now"})
FALLBACK_NAMES = NAMES | {"failure"}
MAX_SIZE = sandbox.MAX_SIZE  # longest value a template may build, and longest rendered field
Ref = tuple[str | int, ...]

ENV = sandbox.ENV


class Scope:
    """One evaluation's names, shared by every template of a rule for that event.

    Most rule templates are plain lookups (``{{ event.phone }}``) that render without Jinja;
    the Jinja context, the dearest part of a render, is made only when a template needs it.
    """

    __slots__ = ("names", "_context")

    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names
        self._context: Context | None = None

    @property
    def context(self) -> Context:
        """The Jinja context over :attr:`names` (made once, on first use)."""
        if self._context is None:
            self._context = Context(ENV, self.names, None, {})
        return self._context


def new_scope(variables: dict[str, Any]) -> Scope:
    """The scope of one evaluation; ``variables`` is used as is, never changed."""
    return Scope(variables)


def _is_template(source: str) -> bool:
    return "{{" in source or "{%" in source or "{#" in source


@dataclass(frozen=True, eq=False, slots=True)
class CompiledTemplate:
    """A template ready to render; a constant when the source has no Jinja markup."""

    source: str
    rule_id: str
    field: str
    template: Any = None  # jinja2.Template
    refs: tuple[Ref, ...] = ()
    direct: lookups.Direct | None = None
    checked: bool = False  # loops or several outputs: a budget, and the output counted

    def render(self, scope: Scope | dict[str, Any]) -> str:
        """Render in ``scope`` (see :func:`new_scope`; a dict is wrapped); raises RenderError."""
        if self.template is None:
            return self.source
        if type(scope) is dict:
            scope = Scope(scope)
        assert isinstance(scope, Scope)
        if self.direct is not None:
            try:
                done = lookups.render(self.direct, scope.names)
            except Exception:  # Jinja renders it again and reports it as it would have
                done = lookups.GIVE_UP
            if done is not lookups.GIVE_UP:
                return done  # type: ignore[no-any-return]
        context = scope.context
        try:
            if self.checked:
                with sandbox.budgeted():
                    return sandbox.concat(self.template.root_render_func(context))
            return "".join(self.template.root_render_func(context))
        except Exception as exc:  # every failure of one render is a RenderError
            raise render_error(self.rule_id, self.field, exc, self.refs, scope.names) from None
        finally:
            if context.vars:  # a top-level {% set %} must not leak into the next field
                context.vars.clear()
                context.exported_vars.clear()


@dataclass(frozen=True, eq=False, slots=True)
class CompiledExpression:
    """An expression ready to evaluate, such as ``event.stage == "docs_required"``."""

    source: str
    rule_id: str
    field: str
    template: Any
    refs: tuple[Ref, ...] = ()
    direct: lookups.DirectExpression | None = None

    def evaluate(self, scope: Scope | dict[str, Any]) -> Any:
        """The expression's value in ``scope``; raises RenderError."""
        if type(scope) is dict:
            scope = Scope(scope)
        assert isinstance(scope, Scope)
        if self.direct is not None:
            try:
                done = lookups.evaluate(self.direct, scope.names)
                if done is not lookups.GIVE_UP:
                    return done
            except Exception:  # Jinja evaluates it again and reports it as it would have
                pass
        return self._jinja(scope, truth=False)

    def holds(self, scope: Scope | dict[str, Any]) -> bool:
        """Truth of the expression; an undefined result is an error, not false."""
        if type(scope) is dict:
            scope = Scope(scope)
        assert isinstance(scope, Scope)
        if self.direct is not None:
            try:
                done = lookups.evaluate(self.direct, scope.names)
                if done is not lookups.GIVE_UP:
                    return bool(done)
            except Exception:  # Jinja evaluates it again and reports it as it would have
                pass
        return bool(self._jinja(scope, truth=True))

    def _jinja(self, scope: Scope, *, truth: bool) -> Any:
        context = scope.context
        try:
            for _ in self.template.root_render_func(context):
                pass
            result = context.vars["result"]
            return bool(result) if truth else result
        except Exception as exc:
            raise render_error(self.rule_id, self.field, exc, self.refs, scope.names) from None
        finally:
            context.vars.clear()
            context.exported_vars.clear()


def compile_template(
    source: str, *, rule_id: str, field: str, names: frozenset[str] | None = NAMES
) -> CompiledTemplate:
    """Compile ``source`` once; raises TemplateProblem. ``names=None`` skips the name check."""
    if not _is_template(source):
        return CompiledTemplate(source, rule_id, field)
    with treecheck.nesting():
        tree = treecheck.parse_template(source)
        treecheck.check(tree, names)
        refs, direct = tuple(_refs(tree)), lookups.template(tree, ENV.filters)
        _constant_problems(tree)
        checked = treecheck.bound(tree)
        template = treecheck.compile_tree(tree, source)
    return CompiledTemplate(source, rule_id, field, template, refs, direct, checked)


def compile_expression(
    source: str, *, rule_id: str, field: str, names: frozenset[str] | None = NAMES
) -> CompiledExpression:
    """Compile a Jinja2 expression once; raises TemplateProblem."""
    with treecheck.nesting():
        tree = treecheck.parse_expression(source)
        treecheck.check(tree, names)
        expr = tree.body[0].node  # type: ignore[attr-defined]
        refs, direct = tuple(_refs(tree)), lookups.expression(expr, ENV.filters)
        _constant_problems(tree)
        treecheck.bound(tree)
        template = treecheck.compile_tree(tree, source)
    return CompiledExpression(source, rule_id, field, template, refs, direct)


def _constant_problems(tree: nodes.Template) -> None:
    problems = treecheck.constant_problems(tree)
    if problems:
        raise TemplateProblem("; ".join(problems))


def _refs(tree: nodes.Template) -> Iterator[Ref]:
    """Every chain like ``event.a.b`` / ``event["x"]`` in source order, to name what is missing."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        chain = _chain(node)
        if chain and chain[0] in FALLBACK_NAMES:
            yield chain


def _chain(node: nodes.Node) -> Ref | None:
    if isinstance(node, nodes.Name):
        return (node.name,) if node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        base = _chain(node.node)
        return (*base, node.attr) if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _chain(node.node)
        key = node.arg.value
        return (*base, key) if base and isinstance(key, str | int) else None
    return None


def render_error(
    rule_id: str, field: str, exc: Exception, refs: tuple[Ref, ...], variables: Mapping[str, Any]
) -> RenderError:
    """Map one exception of a render to a RenderError that says what to fix."""
    if isinstance(exc, RenderError):
        return exc
    if isinstance(exc, SecurityError) or "unsafe" in str(exc):
        return RenderError(rule_id, field, f"refused by the sandbox: {exc}")
    if isinstance(exc, UndefinedError):
        return RenderError(rule_id, field, _missing(refs, variables) or str(exc))
    if isinstance(exc, ValueError | TypeError | ArithmeticError | LookupError):
        return RenderError(rule_id, field, str(exc) or type(exc).__name__)
    return RenderError(rule_id, field, f"{type(exc).__name__}: {exc}")


def _missing(refs: tuple[Ref, ...], variables: Mapping[str, Any]) -> str | None:
    """Which referenced name does not resolve, with a hint from the keys that do exist."""
    for ref in refs:
        value: Any = variables
        for depth, part in enumerate(ref):
            found, value = _step(value, part)
            if not found:
                return _describe_missing(ref[: depth + 1], value)
    return None


def _step(value: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(value, Mapping):
        if part in value:
            return True, value[part]
        return False, value
    if isinstance(value, list | tuple) and isinstance(part, int):
        return (True, value[part]) if -len(value) <= part < len(value) else (False, value)
    if isinstance(part, str) and not part.startswith("_") and hasattr(value, part):
        return True, getattr(value, part)
    return False, value


def _describe_missing(ref: Ref, parent: Any) -> str:
    shown = _show_ref(ref)
    message = f"'{shown}' is undefined"
    if len(ref) > 1 and isinstance(parent, Mapping) and isinstance(ref[-1], str):
        keys = [str(k) for k in parent]
        hint = did_you_mean(ref[-1], keys)
        if hint:
            return message + hint
        if keys:
            listed = ", ".join(sorted(keys)[:12]) + (", …" if len(keys) > 12 else "")
            return f"{message} ({_show_ref(ref[:-1])} has: {listed})"
        return f"{message} ({_show_ref(ref[:-1])} is empty)"
    return message


def _show_ref(ref: Ref) -> str:
    out = str(ref[0])
    for part in ref[1:]:
        out += f".{part}" if isinstance(part, str) and part.isidentifier() else f"[{part!r}]"
    return out
