"""Jinja2 for rules: one sandboxed environment, everything compiled once at load.

The environment is an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined`` and no globals:
a template sees only ``event``, ``trigger``, ``now`` (and ``failure`` in fallbacks). Names are
checked when a rule loads, so ``evnt.phone`` is a validation problem, not a failed send. At
render time a missing field, a bad date or a sandbox refusal raises :class:`RenderError` naming
the rule, the field and the missing name (``'event.due' is undefined``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nextstep.engine.errors import RenderError
from nextstep.engine.rules import lookups
from nextstep.engine.rules.compat import Context
from nextstep.engine.rules.filters import FILTERS
from nextstep.engine.rules.schema import did_you_mean

NAMES = frozenset({"event", "trigger", "now"})
FALLBACK_NAMES = NAMES | {"failure"}
MAX_SIZE = 100_000  # longest string or list `*` may build inside a template
_FORBIDDEN_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
Ref = tuple[str | int, ...]


class TemplateProblem(ValueError):
    """A template or expression does not compile; the message says where and why."""


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, also bounding ``*`` and ``**`` so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # A field of the event wins over a dict method of the same name (`event.items`), and
        # skipping the failed attribute lookup keeps `event.x` fast.
        if type(obj) is dict:
            if attribute in obj:
                return obj[attribute]
            if not hasattr(dict, attribute):
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("exponent too large for the sandbox")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > MAX_SIZE:
                    raise SecurityError("result too large for the sandbox")
        return super().call_binop(context, operator, left, right)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
ENV.globals.clear()
ENV.filters.update(FILTERS)


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
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(_syntax(exc, source)) from None
    _check_tree(tree, names)
    return CompiledTemplate(
        source,
        rule_id,
        field,
        _from_tree(tree, source),
        tuple(_refs(tree)),
        lookups.template(tree, ENV.filters),
    )


def compile_expression(
    source: str, *, rule_id: str, field: str, names: frozenset[str] | None = NAMES
) -> CompiledExpression:
    """Compile a Jinja2 expression once; raises TemplateProblem."""
    try:
        parser = Parser(ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError(
                f"unexpected {token.value!r} after the expression", token.lineno
            )
    except TemplateSyntaxError as exc:
        raise TemplateProblem(_syntax(exc, source)) from None
    tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr)], lineno=1)
    tree.set_environment(ENV)
    _check_tree(tree, names)
    template = _from_tree(tree, source)
    direct = lookups.expression(expr, ENV.filters)
    return CompiledExpression(source, rule_id, field, template, tuple(_refs(tree)), direct)


def _from_tree(tree: nodes.Template, source: str) -> Any:
    """The Jinja template of a checked tree; what Jinja's own compiler refuses is a problem."""
    try:
        return ENV.from_string(tree)
    except TemplateSyntaxError as exc:  # TemplateAssertionError too
        raise TemplateProblem(_syntax(exc, source)) from None


def _syntax(exc: TemplateSyntaxError, source: str) -> str:
    where = f" (line {exc.lineno} of the template)" if "\n" in source.strip() else ""
    return f"Jinja2 syntax error{where}: {exc.message}"


def _check_tree(tree: nodes.Template, names: frozenset[str] | None) -> None:
    for node in tree.find_all(_FORBIDDEN_NODES):
        raise TemplateProblem(f"'{type(node).__name__.lower()}' is not available in rules")
    calls: list[nodes.Filter | nodes.Test] = [
        *tree.find_all(nodes.Filter),
        *tree.find_all(nodes.Test),
    ]
    calls.sort(key=lambda n: (n.lineno, n.name))
    problems = [m for m in map(_unknown_call, calls) if m]
    if problems:
        raise TemplateProblem("; ".join(dict.fromkeys(problems)))
    if names is None:
        return
    if any(n.name == "self" for n in tree.find_all(nodes.Name)):
        raise TemplateProblem("'self' is not available in rules")
    unknown = sorted(find_undeclared_variables(tree) - names)
    if unknown:
        name = unknown[0]
        if name == "failure":
            raise TemplateProblem("'failure' is only available in policy.fallback sends")
        hint = did_you_mean(name, names) or f"; rules see {', '.join(sorted(names))}"
        raise TemplateProblem(f"unknown name '{name}'{hint}")


def _unknown_call(node: nodes.Filter | nodes.Test) -> str | None:
    """``unknown filter 'titel'; did you mean 'title'?`` for a filter or test Jinja lacks."""
    kind, known = ("filter", ENV.filters) if isinstance(node, nodes.Filter) else ("test", ENV.tests)
    public = [name for name in known if not name.startswith("_")]
    if node.name in public:
        return None
    hint = did_you_mean(node.name, public) or f" (docs/rules.md lists the {kind}s)"
    return f"unknown {kind} '{node.name}'{hint}"


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
