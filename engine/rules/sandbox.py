"""The Jinja2 environment of rules: a sandbox that also bounds what a template may build.

``ImmutableSandboxedEnvironment`` keeps templates away from Python's internals; it does not stop
``'x' | center(999999999)`` from building a gigabyte, nor two nested loops over 100,000 items
from holding the event loop for minutes. On top of it:

* **size**: no operation may make a value larger than :data:`MAX_SIZE` characters or items
  (a list counts its items' sizes, as ``str()`` of it would), unless its input already was (an
  event's long text may be passed through, trimmed, upper-cased). The operations whose result
  can be far larger than their inputs are checked *before* they run (``*``, ``**``, ``%`` and
  ``format`` widths, ``center``, ``indent``, ``wordwrap``, ``join``, ``replace``, ``batch``,
  ``slice``, ``str.ljust``…); every other filter, method call, ``+`` and ``~`` after (it can at
  most multiply its input by a small factor); lazy filters (``map``, ``select``…) count what
  they yield; a rendered field holds at most :data:`MAX_OUTPUT` characters.
* **time**: every loop steps a budget of :data:`MAX_STEPS` iterations and :data:`MAX_SECONDS`
  per render (:func:`budgeted`); macros, call blocks and recursive loops are not available
  (:mod:`.treecheck`), and slow filters take bounded input (``wordwrap``).

A refusal raises ``SecurityError``, which the renderer reports as a render error naming the rule
and field (``refused by the sandbox: …``); :mod:`.treecheck` also evaluates the constant parts of
a template at load, so most hostile templates are refused by ``validate``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from markupsafe import EscapeFormatter, Markup

from nextstep.engine.rules.compat import Context, PassArg
from nextstep.engine.rules.filters import FILTERS

MAX_SIZE = 100_000  # characters or items a template may make a value grow to
MAX_OUTPUT = 1_000_000  # characters of one rendered field (or {% set %} block)
MAX_STEPS = 10_000  # loop iterations of one render, all loops together
MAX_SECONDS = 0.5  # one render's time, checked at each loop step
MAX_SOURCE = 10_000  # characters of one template's source (compiling 10,000 takes ~0.5 s)
SLOW_TEXT = 10_000  # longest input of filters that are slow on long text (wordwrap)

LOOP_FILTER = "_nextstep_steps"  # wraps every {% for %}'s iterable (see treecheck.bound)
CONCAT_FILTER = "_nextstep_concat"  # replaces every `~`

_CONTAINERS: tuple[type, ...] = (
    list,
    tuple,
    set,
    frozenset,
    dict,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SPEC_NUMBERS = re.compile(r"\d+")


def refuse(what: str) -> SecurityError:
    """The error of a refused operation (``refused by the sandbox: <what>``)."""
    return SecurityError(what)


def measure(value: Any, limit: int = MAX_OUTPUT) -> int:
    """The size of ``value``: characters of text, items of containers plus their items' sizes
    (what ``str()`` of it would hold), bytes of a large number; counting stops past ``limit``."""
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is list or kind is tuple:  # most often a few strings (`name.split(' ')`)
        total = len(value) + 1
        for item in value:
            if type(item) is not str:
                return _deep(value, limit)
            total += len(item)
        return total
    if isinstance(value, _CONTAINERS):
        return _deep(value, limit)
    return _scalar(value)


def _scalar(value: Any) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    if type(value) is int:
        return value.bit_length() // 8 + 1
    return 1


def _deep(value: Any, limit: int) -> int:
    total = 0
    stack: list[Any] = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, dict):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += len(item) + 1  # type: ignore[arg-type]
            stack.extend(item)  # type: ignore[arg-type]
        else:
            total += _scalar(item)
    return total


def _limit(inputs: Iterable[Any]) -> int:
    """What a result may hold: :data:`MAX_SIZE`, or the largest input's size when larger."""
    return max([MAX_SIZE, *map(measure, inputs)])


def _expect(estimate: int, what: str, *inputs: Any) -> None:
    """Refuse an operation whose result would hold ``estimate`` characters or items."""
    if estimate > MAX_SIZE and estimate > _limit(inputs):
        raise refuse(f"{what} would make a value longer than {MAX_SIZE:,} characters or items")


def bounded(result: Any, what: str, inputs: tuple[Any, ...] = ()) -> Any:
    """``result`` of an operation on ``inputs``, or SecurityError when it grew too large."""
    if type(result) is str:
        if len(result) <= MAX_SIZE:
            return result
    elif not isinstance(result, _CONTAINERS) or any(result is i for i in inputs):
        return result
    size = measure(result)
    if size > MAX_SIZE:
        _expect(size, what, *inputs)
    return result


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- the budget of one render ------------------------------------------------------------
class Budget:
    """Loop steps and time left to one render."""

    __slots__ = ("steps", "deadline")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        """One loop iteration; SecurityError when the render has run too long."""
        self.steps -= 1
        if self.steps < 0:
            raise refuse(f"the loops run more than {MAX_STEPS:,} steps")
        self.check_time()

    def check_time(self) -> None:
        """SecurityError when the render has run longer than :data:`MAX_SECONDS`."""
        if time.monotonic() > self.deadline:
            raise refuse(f"rendering takes longer than {MAX_SECONDS} s")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("budget", default=None)


@contextmanager
def budgeted() -> Iterator[Budget]:
    """A fresh budget for the loops of one render (templates with loops render inside it)."""
    budget = Budget()
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _steps(iterable: Any) -> Iterator[Any]:
    """A loop's iterable, stepping the render's budget at each item."""
    budget = _BUDGET.get() or Budget()
    for item in iterable:
        budget.step()
        yield item


def _lazy(iterable: Iterable[Any], what: str) -> Iterator[Any]:
    """What a lazy filter yields, refused once it has yielded more than :data:`MAX_SIZE`."""
    total = 0
    for item in iterable:
        total += measure(item) + 1
        if total > MAX_SIZE:
            raise refuse(f"{what} would yield more than {MAX_SIZE:,} characters or items")
        yield item


def _concat(parts: list[Any]) -> str:
    """``a ~ b``: the parts as text, bounded."""
    texts = [p if type(p) is str else str(bounded(p, "a part of '~'")) for p in parts]
    _expect(sum(map(len, texts)), "'~'", *texts)
    return "".join(texts)


def concat(parts: Iterable[str]) -> str:
    """The environment's ``concat`` (a field's output, ``{% set %}`` and filter blocks):
    the parts joined, at most :data:`MAX_OUTPUT` characters."""
    out: list[str] = []
    size = 0
    for part in parts:
        size += len(part)
        if size > MAX_OUTPUT:
            raise refuse(f"the rendered text would be longer than {MAX_OUTPUT:,} characters")
        out.append(part)
    return "".join(out)


def finalize(value: Any) -> Any:
    """Every ``{{ … }}`` output before it becomes text: a structure ``str()`` would make
    longer than :data:`MAX_SIZE` characters is refused (text is already bounded)."""
    if type(value) is str or not isinstance(value, _CONTAINERS):
        return value
    _expect(measure(value) * 3, "an output")
    return value


# -- formatting ----------------------------------------------------------------------------
def check_printf(fmt: str | bytes, args: Any) -> None:
    """``fmt % args``: no width or precision past :data:`MAX_SIZE`, and no ``*`` width."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    estimate = len(text)
    for width, precision in _PRINTF.findall(text):
        if "*" in (width, precision):
            raise refuse("'*' widths in '%' formatting are not available in rules")
        estimate += max(int(width or 0) if len(width) < 12 else MAX_OUTPUT, int(precision or 0))
    values = args.values() if isinstance(args, Mapping) else args
    values = values if isinstance(values, tuple | list) else (values,)
    _expect(estimate + sum(measure(v) for v in values), "'%' formatting")


class _BoundedFields:
    """A formatter mixin: no field width or precision past :data:`MAX_SIZE`, and the output
    counted as it is built (``'{0}{0}{0}…'.format(big)``)."""

    _made = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in _SPEC_NUMBERS.findall(format_spec):
            _expect(int(number) if len(number) < 12 else MAX_OUTPUT, "a format field")
        text = super().format_field(value, format_spec)  # type: ignore[misc]
        self._made += len(text)
        _expect(self._made, "str.format", value)
        return text


class _Formatter(_BoundedFields, SandboxedFormatter):
    pass


class _EscapeFormatter(_BoundedFields, SandboxedFormatter, EscapeFormatter):
    pass


# -- method calls ----------------------------------------------------------------------------
def _padded(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return len(owner) + _count(args[0] if args else kwargs.get("width", 0))


def _tabs(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    tabs: int = owner.count("\t" if isinstance(owner, str) else b"\t")
    return len(owner) + tabs * _count(args[0] if args else kwargs.get("tabsize", 8))


_METHOD_CHECKS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], int]] = {
    "center": _padded,
    "ljust": _padded,
    "rjust": _padded,
    "zfill": _padded,
    "expandtabs": _tabs,
    "replace": lambda owner, a, k: _replaced(owner, *a[:3]),
    "to_bytes": lambda owner, a, k: _count(a[0] if a else k.get("length", 1)),
}
_REFUSED_METHODS = frozenset({"translate", "maketrans"})
_FORMATS = ("format", "format_map")
_CHECKED_OWNERS = frozenset({str, bytes, int, Markup})
# Text methods whose result may outgrow a few times their text (the others split, strip,
# search or change case: at most about three times the text).
_GROWING_METHODS = frozenset({*_METHOD_CHECKS, *_REFUSED_METHODS, "join", "format", "format_map"})


def check_call(
    owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Refuse a method call of text or numbers (``owner.name(...)``) whose result would be too
    large; returns the arguments to call with (``str.join``'s iterable made a list)."""
    if name == "join" and isinstance(owner, str | bytes) and args:
        items = list(_lazy(args[0], "the items of str.join"))
        _expect(sum(map(measure, items)) + len(owner) * len(items), "str.join")
        return (items, *args[1:])
    if name in _REFUSED_METHODS:
        raise refuse(f"{type(owner).__name__}.{name} is not available in rules")
    check = _METHOD_CHECKS.get(name)
    if check is not None:
        _expect(check(owner, args, kwargs), f"{type(owner).__name__}.{name}", owner)
    return args


def _replaced(text: Any, old: Any = "", new: Any = "", count: Any = None) -> int:
    if not isinstance(text, str | bytes) or not isinstance(old, str | bytes):
        return 0
    found: int = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, measure(new) - len(old))


# -- operators -------------------------------------------------------------------------------
def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``**``, ``%`` and ``+`` whose result would be too large."""
    if operator == "**":
        if isinstance(right, int | float) and abs(right) > 100:
            raise refuse("exponent too large for the sandbox")
        if type(left) is int and type(right) is int and right > 0:
            _expect(left.bit_length() * right // 8, "'**'")
    elif operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and type(count) is int:
                _expect(measure(seq) * count, "'*'", seq)
        if type(left) is int and type(right) is int:
            _expect((left.bit_length() + right.bit_length()) // 8, "'*'")
    elif operator == "%":
        if isinstance(left, str | bytes):
            check_printf(left, right)
    elif operator == "+" and not isinstance(left, int | float):
        _expect(measure(left) + measure(right), "'+'", left, right)


# -- filters ---------------------------------------------------------------------------------
def _join(a: dict[str, Any]) -> None:
    if not isinstance(a["value"], str):
        a["value"] = list(_lazy(a["value"], "the items of 'join'"))
    items, separator = a["value"], a.get("d", "")
    _expect(sum(map(measure, items)) + measure(separator) * len(items), "'join'")


def _wordwrap(a: dict[str, Any]) -> None:
    text, width = str(a["s"]), max(1, _count(a.get("width", 79)))
    if len(text) > SLOW_TEXT:
        raise refuse(f"wordwrap takes at most {SLOW_TEXT:,} characters")
    wrap = a.get("wrapstring") or "\n"
    _expect(len(text) + (len(text) // width + 1) * measure(wrap), "'wordwrap'", text)


def _indent(a: dict[str, Any]) -> None:
    text, width = str(a["s"]), a.get("width", 4)
    per_line = len(width) if isinstance(width, str) else _count(width)
    _expect(len(text) + (text.count("\n") + 2) * per_line, "'indent'", text)


def _urlize(a: dict[str, Any]) -> None:
    text = str(a["value"])
    extra = sum(measure(a.get(k) or "") for k in ("target", "rel", "extra_schemes"))
    _expect(len(text) * 3 + (len(text) // 4 + 1) * (extra + 40), "'urlize'", text)


def _sum(a: dict[str, Any]) -> None:
    a["iterable"] = list(_lazy(a["iterable"], "the items of 'sum'"))
    values = [a.get("start", 0), *a["iterable"]] if a.get("attribute") is None else []
    if any(not isinstance(v, int | float) for v in values):
        raise refuse("sum adds numbers only")


def _tojson(a: dict[str, Any]) -> None:
    if a.get("indent"):  # the output would grow with the nesting depth
        raise refuse("tojson(indent=…) is not available in rules")


def _format(a: dict[str, Any]) -> None:
    check_printf(str(a["value"]), a.get("kwargs") or a.get("args", ()))


def _center(a: dict[str, Any]) -> None:
    text = str(a["value"])
    _expect(len(text) + _count(a.get("width", 80)), "'center'", text)


def _replace(a: dict[str, Any]) -> None:
    _expect(_replaced(a["s"], a["old"], a["new"], a.get("count")), "'replace'", a["s"])


# Filters whose result can be far larger than their input, checked before they run (``a``: the
# call's arguments by name; a check may replace a lazy input by the list it materialised).
_BEFORE: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "join": _join,
    "urlize": _urlize,
    "batch": lambda a: _expect(_count(a["linecount"]), "'batch'"),
    "slice": lambda a: _expect(_count(a["slices"]), "'slice'"),
    "format": _format,
    "sum": _sum,
    "tojson": _tojson,
}
_LAZY = frozenset({"map", "select", "reject", "selectattr", "rejectattr", "batch", "slice"})
_UNAVAILABLE = frozenset({"pprint"})  # its output grows with the nesting depth
# Filters that return one of their inputs, a part of one, or a number: nothing to bound.
_PASSING = frozenset(
    {"default", "d", "length", "count", "first", "last", "int", "float", "abs", "round"}
    | {"random", "max", "min", "wordcount", "attr"}
)


def _signature(function: Callable[..., Any]) -> inspect.Signature:
    """The parameters a filter is called with, the context Jinja passes first included (an
    async-variant filter's signature is its synchronous function's, without it)."""
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    passed = ("context", "eval_ctx", "environment")
    if PassArg.from_obj(function) is not None and (not params or params[0].name not in passed):
        params.insert(0, inspect.Parameter("passed", inspect.Parameter.POSITIONAL_ONLY))
    return signature.replace(parameters=params)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    signature = _signature(function)
    before = _BEFORE.get(name)
    lazy = name in _LAZY
    what = f"'{name}'"

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.check_time()
        if before is not None:
            bound = signature.bind(*args, **kwargs)
            before(bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        result = function(*args, **kwargs)
        if type(result) is str and len(result) <= MAX_SIZE:
            return result
        if lazy:
            return _lazy(result, what)
        return bounded(result, what, (*args, *kwargs.values()))

    return run


def bounded_filters() -> dict[str, Callable[..., Any]]:
    """Jinja's filters, each bounded (see the module's docstring), nextstep's own (bounded in
    themselves), and the loop and ``~`` helpers :mod:`.treecheck` inserts."""
    found = {
        name: function if name in _PASSING else _bounded_filter(name, function)
        for name, function in JINJA_FILTERS.items()
        if name not in _UNAVAILABLE
    }
    found.update(FILTERS)
    found[LOOP_FILTER] = _steps
    found[CONCAT_FILTER] = _concat
    return found


# -- the environment -------------------------------------------------------------------------
class Environment(ImmutableSandboxedEnvironment):
    """The sandbox with the bounds above. A field of a dict wins over a dict method of the
    same name (``event.items`` is the event's ``items``)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute``; an event's fields first (and fast)."""
        if type(obj) is dict:
            if attribute in obj:
                return obj[attribute]
            if not hasattr(dict, attribute):
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """An intercepted operator, refused when its result would be too large."""
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A call from a template: checked before (text methods) and after (any result)."""
        owner = getattr(__obj, "__self__", None)
        if type(owner) in _CHECKED_OWNERS:
            name = getattr(__obj, "__name__", "")
            if type(owner) is str and name not in _GROWING_METHODS and len(owner) < MAX_SIZE // 4:
                return super().call(__context, __obj, *args, **kwargs)  # cannot grow past
            args = check_call(owner, name, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if type(result) is str and len(result) <= MAX_SIZE:
            return result
        return bounded(result, "the call", (owner, *args, *kwargs.values()))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'…'.format(…)`` / ``format_map`` through a formatter that bounds its output."""
        if getattr(value, "__name__", None) not in _FORMATS or not super().wrap_str_format(value):
            return None
        owner: str = value.__self__
        is_map = value.__name__ == "format_map"

        def run(*args: Any, **kwargs: Any) -> str:
            formatter: SandboxedFormatter = (
                _EscapeFormatter(self, escape=owner.escape)
                if isinstance(owner, Markup)
                else _Formatter(self)
            )
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                return type(owner)(formatter.vformat(owner, (), args[0]))
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(run, value)


def _environment() -> Environment:
    env = Environment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=finalize
    )
    env.globals.clear()
    env.filters.clear()
    env.filters.update(bounded_filters())
    env.concat = concat  # type: ignore[method-assign]
    return env


ENV = _environment()
"""The one environment every rule template and expression is compiled in."""
