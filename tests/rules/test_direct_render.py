"""Templates made of lookups render without Jinja, with exactly Jinja's results and errors."""

from __future__ import annotations

import dataclasses
import datetime
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstep.engine.errors import RenderError
from nextstep.engine.rules.expressions import (
    CompiledExpression,
    CompiledTemplate,
    compile_expression,
    compile_template,
    new_scope,
)

MOMENT = datetime.datetime(2026, 6, 20, 9, 30, tzinfo=datetime.UTC)
EVENT: dict[str, Any] = {
    "name": "maría lópez",
    "n": 3,
    "price": Decimal("1.50"),
    "ratio": 0.1,
    "none": None,
    "flag": False,
    "tags": ["a", "b"],
    "nested": {"city": "Sevilla", "deep": {"x": 1}},
    "b c": "spaced",
    "items": "a field named like a dict method",
    "date": "20/06/2026",
    "bad_date": "someday",
    "when": datetime.date(2026, 6, 20),
}
NAMES = {"event": EVENT, "trigger": {"kind": "csv", "row": 7}, "now": MOMENT}


def _outcome(template: CompiledTemplate | CompiledExpression, names: dict[str, Any]) -> Any:
    try:
        if isinstance(template, CompiledTemplate):
            return ("ok", template.render(new_scope(names)))
        return ("ok", template.evaluate(new_scope(names)))
    except RenderError as exc:
        return ("error", exc.field, exc.reason)


def _both(template: CompiledTemplate | CompiledExpression, names: dict[str, Any]) -> Any:
    """The direct outcome, after checking that Jinja alone gives the same."""
    jinja_only = dataclasses.replace(template, direct=None)
    direct = _outcome(template, names)
    assert direct == _outcome(jinja_only, names)
    return direct


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.name }}",
        "Hi {{ event.name | title }}, #{{ event.n }} {{ trigger.row }}!",
        "{{ event.price }} {{ event.ratio }} {{ event.none }} {{ event.flag }}",
        "{{ event.tags }} {{ event.nested }}",
        "{{ event.nested.city }}/{{ event['nested']['deep'].x }}",
        "{{ event['b c'] }} and {{ event.items }}",
        "{x} 100% {{ event.n }} }}",
        "{{ event.name | upper | trim }} {{ event.tags | length }}",
        "{{ event.date | parse_date }} {{ event.when }}",
        "{{ now }}",
        "{{ event.missing }}",
        "{{ event.nested.missing }}",
        "{{ event.tags.first }}",
        "{{ event.n.real }}",
        "{{ event.bad_date | parse_date }}",
        "{{ event.name | date('%d') }}",
        "{{ event.phone | phone }}",
    ],
)
def test_direct_templates_render_as_jinja_does(source: str) -> None:
    template = compile_template(source, rule_id="r", field="f")
    _both(template, NAMES)


def test_lookups_take_the_direct_way_and_the_rest_jinja() -> None:
    direct = ["{{ event.a }}", "x {{ event.a.b | title }} {{ trigger['k'] }}", "{{ now }}"]
    jinja = ["{{ event.a ~ 'x' }}", "{{ event.d | date('%d') }}", "{% if x %}y{% endif %}"]
    for source in direct:
        assert compile_template(source, rule_id="r", field="f", names=None).direct is not None
    for source in jinja:
        assert compile_template(source, rule_id="r", field="f", names=None).direct is None


def test_a_dict_subclass_and_missing_names_go_through_jinja() -> None:
    template = compile_template("{{ event.a }}", rule_id="r", field="f")
    assert _both(template, {"event": OrderedDict(a="1")}) == ("ok", "1")
    assert _both(template, {}) == ("error", "f", "'event' is undefined")


@pytest.mark.parametrize(
    "source",
    [
        'event.name == "maría lópez"',
        "event.n != 3",
        "event.n > 2",
        "event.n <= event.ratio",
        "event.name > 2",
        "event.flag",
        "event.nested.city",
        "event.missing == 1",
        "1 == event.n",
        "event.tags | length",
        "not event.flag",
        "event.n in [1, 3]",
    ],
)
def test_direct_expressions_evaluate_as_jinja_does(source: str) -> None:
    expression = compile_expression(source, rule_id="r", field="when")
    _both(expression, NAMES)


def test_truth_of_an_undefined_value_is_an_error_either_way() -> None:
    expression = compile_expression("event.missing", rule_id="r", field="when")
    with pytest.raises(RenderError, match="'event.missing' is undefined"):
        expression.holds({"event": {}})


_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)


@given(
    event=st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        _values | st.dictionaries(st.sampled_from(["a", "b"]), _values, max_size=2),
        max_size=3,
    ),
    source=st.sampled_from(
        [
            "{{ event.a }}-{{ event.b }}",
            "{{ event.a.b }}",
            "{{ event['c'] | string | title }}",
            "{{ event.a | length }}",
        ]
    ),
)
def test_any_event_renders_the_same_both_ways(event: dict[str, Any], source: str) -> None:
    _both(compile_template(source, rule_id="r", field="f"), {"event": event})
