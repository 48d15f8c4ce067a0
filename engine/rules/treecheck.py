"""What a rule template may be, decided on its parsed tree when the rule loads.

* :func:`parse_template` / :func:`parse_expression`: Jinja's parser, with a bound on the source's
  length and nesting (a template nested 1,000 levels deep is a problem, not a RecursionError);
* :func:`check`: nothing that reaches outside the template (``include``, ``import``…), no
  macros or call blocks (recursion without a budget), no recursive loops, only known filters,
  tests and names;
* :func:`bound`: rewrites every loop's iterable to step the render's budget and every ``~`` to a
  bounded join (see :mod:`.sandbox`), and says whether the render must count its output;
* :func:`constant_problems`: evaluates the parts that depend on no name once, so that what the
  sandbox would refuse for every event (``'x' | center(999999999)``, loops over
  ``'x' * 100000`` inside each other) is a problem of ``validate``, not of every render.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser

from nextstep.engine.rules import sandbox
from nextstep.engine.rules.compat import Context
from nextstep.engine.rules.schema import did_you_mean

ENV = sandbox.ENV
_FORBIDDEN = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
_UNBUDGETED = {nodes.Macro: "macros", nodes.CallBlock: "call blocks"}
# More filters, calls and operators than this and a render runs with a time budget.
_BUDGETED_OPERATIONS = 20
# Expressions without a name that are not worth evaluating again (a literal, a list of them).
_LITERALS = (nodes.Const, nodes.TemplateData)


class TemplateProblem(ValueError):
    """A template or expression does not compile; the message says where and why."""


@contextmanager
def nesting() -> Iterator[None]:
    """Around a template's compilation: nesting too deep for Python's stack (a long chain of
    ``+``, 1,000 parentheses) is a problem, not a RecursionError."""
    try:
        yield
    except (RecursionError, MemoryError):
        raise TemplateProblem("the template is nested too deeply") from None


def parse_template(source: str) -> nodes.Template:
    """The tree of a template; TemplateProblem when it does not parse or is too large."""
    _check_length(source)
    try:
        return ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(syntax_message(exc, source)) from None
    except (RecursionError, MemoryError):
        raise TemplateProblem("the template is nested too deeply") from None


def parse_expression(source: str) -> nodes.Template:
    """The tree of an expression (``{% set result = … %}``); TemplateProblem as above."""
    _check_length(source)
    try:
        parser = Parser(ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError(
                f"unexpected {token.value!r} after the expression", token.lineno
            )
    except TemplateSyntaxError as exc:
        raise TemplateProblem(syntax_message(exc, source)) from None
    except (RecursionError, MemoryError):
        raise TemplateProblem("the expression is nested too deeply") from None
    tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr)], lineno=1)
    tree.set_environment(ENV)
    return tree


def _check_length(source: str) -> None:
    if len(source) > sandbox.MAX_SOURCE:
        raise TemplateProblem(
            f"the template is {len(source):,} characters long (at most {sandbox.MAX_SOURCE:,})"
        )


def syntax_message(exc: TemplateSyntaxError, source: str) -> str:
    """A Jinja syntax error as a problem message (with its line in a multi-line template)."""
    where = f" (line {exc.lineno} of the template)" if "\n" in source.strip() else ""
    return f"Jinja2 syntax error{where}: {exc.message}"


def compile_tree(tree: nodes.Template, source: str) -> Any:
    """The Jinja template of a checked tree; what Jinja's own compiler refuses is a problem."""
    try:
        return ENV.from_string(tree)
    except TemplateSyntaxError as exc:  # TemplateAssertionError too
        raise TemplateProblem(syntax_message(exc, source)) from None
    except (RecursionError, MemoryError, SyntaxError):
        raise TemplateProblem("the template is nested too deeply") from None


# -- what a template may use -----------------------------------------------------------------
def check(tree: nodes.Template, names: frozenset[str] | None) -> None:
    """Refuse what rules may not use; ``names=None`` skips the check of names."""
    for node in tree.find_all(_FORBIDDEN):
        raise TemplateProblem(f"'{type(node).__name__.lower()}' is not available in rules")
    for kind, what in _UNBUDGETED.items():
        for _ in tree.find_all(kind):
            raise TemplateProblem(f"{what} are not available in rules")
    if any(loop.recursive for loop in tree.find_all(nodes.For)):
        raise TemplateProblem("recursive loops are not available in rules")
    calls: list[nodes.Filter | nodes.Test] = [
        *tree.find_all(nodes.Filter),
        *tree.find_all(nodes.Test),
    ]
    calls.sort(key=lambda n: (n.lineno, n.name))
    problems = [m for m in map(unknown_call, calls) if m]
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


def unknown_call(node: nodes.Filter | nodes.Test) -> str | None:
    """``unknown filter 'titel'; did you mean 'title'?`` for a filter or test Jinja lacks."""
    kind, known = ("filter", ENV.filters) if isinstance(node, nodes.Filter) else ("test", ENV.tests)
    public = [name for name in known if not name.startswith("_")]
    if node.name in public:
        return None
    hint = did_you_mean(node.name, public) or f" (docs/rules.md lists the {kind}s)"
    return f"unknown {kind} '{node.name}'{hint}"


# -- bounds ----------------------------------------------------------------------------------
def bound(tree: nodes.Template) -> bool:
    """Rewrite loops and ``~`` to their bounded forms (in place); True when a render must run
    with a budget and count its output (loops, blocks, more than one output expression, or
    many operations)."""
    loops = list(tree.find_all(nodes.For))
    for loop in loops:
        loop.iter = _filter(loop.iter, sandbox.LOOP_FILTER)  # type: ignore[arg-type]
    for parent in list(tree.find_all(nodes.Node)):
        for field in parent.fields:
            value = getattr(parent, field)
            if isinstance(value, nodes.Concat):
                setattr(parent, field, _concat(value))
            elif isinstance(value, list):
                value[:] = [_concat(v) if isinstance(v, nodes.Concat) else v for v in value]
    outputs = sum(
        1
        for output in tree.find_all(nodes.Output)
        for node in output.nodes
        if not isinstance(node, nodes.TemplateData)
    )
    blocks = any(True for _ in tree.find_all((nodes.AssignBlock, nodes.FilterBlock)))
    operations = sum(1 for _ in tree.find_all((nodes.Filter, nodes.Call, nodes.BinExpr)))
    return bool(loops) or blocks or outputs > 1 or operations > _BUDGETED_OPERATIONS


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _concat(node: nodes.Concat) -> nodes.Filter:
    return _filter(nodes.List(node.nodes, lineno=node.lineno), sandbox.CONCAT_FILTER)


# -- constant parts --------------------------------------------------------------------------
def constant_problems(tree: nodes.Template) -> list[str]:
    """What the sandbox refuses in the parts of ``tree`` that depend on no name, and loops
    over constants that would run more than :data:`sandbox.MAX_STEPS` steps together. Call it
    before :func:`bound`."""
    problems: list[str] = []
    for part in _constant_parts(tree):
        try:
            _evaluate(part)
        except SecurityError as exc:
            problems.append(f"refused by the sandbox: {exc}")
        except Exception:  # noqa: S112 (anything else is the render's to report, per event)
            continue
    if not problems:
        problems += _loop_steps(tree, 1)
    return list(dict.fromkeys(problems))


def _constant_parts(node: nodes.Node) -> Iterator[nodes.Expr]:
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.Expr) and not isinstance(child, _LITERALS) and _constant(child):
            yield child
        else:
            yield from _constant_parts(child)


def _constant(node: nodes.Node) -> bool:
    names = (nodes.Name, nodes.ContextReference, nodes.DerivedContextReference)
    if isinstance(node, nodes.Filter) and node.node is None:  # a {% filter %} block's filter
        return False
    return isinstance(node, nodes.Expr) and not any(True for _ in node.find_all(names))


def _evaluate(expr: nodes.Expr) -> Any:
    """The value of a constant expression, computed in the sandbox under a render budget."""
    tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), copy.deepcopy(expr))])
    tree.set_environment(ENV)
    bound(tree)
    template = ENV.from_string(tree)
    context = Context(ENV, {}, None, {})
    with sandbox.budgeted():
        for _ in template.root_render_func(context):
            pass
    return context.vars["result"]


def _loop_steps(node: nodes.Node, factor: int) -> list[str]:
    """Loops over constants, multiplied along their nesting."""
    problems: list[str] = []
    for child in node.iter_child_nodes():
        steps = factor
        if isinstance(child, nodes.For) and _constant(child.iter):
            try:
                steps = factor * max(1, len(_evaluate(child.iter)))  # type: ignore[arg-type]
            except Exception:  # noqa: S112 (not a sized constant: counted at render)
                steps = factor
            if steps > sandbox.MAX_STEPS:
                return [
                    f"refused by the sandbox: the loops run {steps:,} steps "
                    f"(at most {sandbox.MAX_STEPS:,} per render)"
                ]
        problems += _loop_steps(child, steps)
        if problems:
            return problems
    return problems
