"""Rendering rule templates that are only lookups, without Jinja (the ingest hot path).

A template made of text and lookups such as ``event.a.b`` / ``event["x"]``, each maybe through
filters without arguments (``{{ event.name | title }}``), is computed here directly: the same
dict lookups the sandbox's ``getattr`` makes, the same filter calls, the same ``str``. So is an
expression that is one lookup or one comparison (``event.stage == "docs"``). Anything unusual
on the way (a missing key, a value that is not a plain dict, a filter raising) returns
:data:`GIVE_UP` and the caller lets Jinja render, so results and error messages are exactly
Jinja's. :mod:`nextstep.engine.rules.expressions` compiles and uses these; nothing else should.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes

from nextstep.engine.rules.compat import PassArg as _PassArg
from nextstep.engine.rules.sandbox import finalize

GIVE_UP: Any = object()
"""Returned when the direct way cannot decide: Jinja renders instead."""

# A lookup: the name, the keys into it, the filters applied in order.
Lookup = tuple[str, tuple[str, ...], tuple[Callable[[Any], Any], ...]]
# A template: (text before a lookup, the lookup) pairs, then the text after the last one.
Direct = tuple[tuple[tuple[str, Lookup], ...], str]
# An operand of an expression: a lookup, or a constant (a 1-tuple).
Operand = Lookup | tuple[Any]
# An expression: left, operator (empty for a lookup alone), right.
DirectExpression = tuple[Operand, str, Operand]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
}


def render(direct: Direct, names: dict[str, Any]) -> Any:
    """The template's text in ``names``, or :data:`GIVE_UP`."""
    pieces, tail = direct
    out = []
    for text, (root, keys, filters) in pieces:
        found = names.get(root, GIVE_UP)
        for key in keys:
            found = found.get(key, GIVE_UP) if type(found) is dict else GIVE_UP
        if found is GIVE_UP:
            return found
        for apply in filters:
            found = apply(found)
        out.append(text)
        out.append(found if type(found) is str else str(finalize(found)))
    out.append(tail)
    return "".join(out)


def evaluate(direct: DirectExpression, names: dict[str, Any]) -> Any:
    """The expression's value in ``names``, or :data:`GIVE_UP`."""
    left, op, right = direct
    a = left[0] if len(left) == 1 else _lookup(names, left)
    if not op or a is GIVE_UP:
        return a
    b = right[0] if len(right) == 1 else _lookup(names, right)
    return b if b is GIVE_UP else _COMPARE[op](a, b)


def _lookup(names: dict[str, Any], lookup: Lookup) -> Any:
    root, keys, filters = lookup
    found = names.get(root, GIVE_UP)
    for key in keys:
        found = found.get(key, GIVE_UP) if type(found) is dict else GIVE_UP
    if found is GIVE_UP:
        return found
    for apply in filters:
        found = apply(found)
    return found


def template(tree: nodes.Template, filters: Mapping[str, Callable[..., Any]]) -> Direct | None:
    """The direct form of a parsed template, None when it is not only text and lookups."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    pieces: list[tuple[str, Lookup]] = []
    text = ""
    for node in tree.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            text += node.data
        elif (lookup := _as_lookup(node, filters)) is not None:
            pieces.append((text, lookup))
            text = ""
        else:
            return None
    return tuple(pieces), text


def expression(
    expr: nodes.Expr, filters: Mapping[str, Callable[..., Any]]
) -> DirectExpression | None:
    """The direct form of a parsed expression: a lookup alone, or one comparison of lookups
    and constants; None for anything else."""
    if not isinstance(expr, nodes.Compare):
        lookup = _as_lookup(expr, filters)
        return None if lookup is None else (lookup, "", (None,))
    if len(expr.ops) != 1 or expr.ops[0].op not in _COMPARE:
        return None
    left, right = _operand(expr.expr, filters), _operand(expr.ops[0].expr, filters)
    return None if left is None or right is None else (left, expr.ops[0].op, right)


def _operand(node: nodes.Node, filters: Mapping[str, Callable[..., Any]]) -> Operand | None:
    return (node.value,) if isinstance(node, nodes.Const) else _as_lookup(node, filters)


def _as_lookup(node: nodes.Node, filters: Mapping[str, Callable[..., Any]]) -> Lookup | None:
    applied: list[Callable[[Any], Any]] = []
    while isinstance(node, nodes.Filter):
        plain = not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)
        function = filters.get(node.name)
        # A filter given the context or environment is not a plain function of its value.
        if not plain or function is None or _PassArg.from_obj(function) is not None:
            return None
        applied.append(function)
        if node.node is None:  # a {% filter %} block, not an expression
            return None
        node = node.node
    keys: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            keys.append(node.arg.value)
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    return node.name, tuple(reversed(keys)), tuple(reversed(applied))
