"""The Jinja2 sandbox: escapes refused, strict undefined, names checked at load."""

from __future__ import annotations

import pytest

from nextstep.engine.errors import RenderError
from nextstep.engine.rules.expressions import (
    TemplateProblem,
    compile_expression,
    compile_template,
    new_scope,
)


def render(source: str, event: dict[str, object] | None = None, **names: object) -> str:
    template = compile_template(source, rule_id="r", field="f", names=None)
    return template.render(new_scope({"event": event or {}, **names}))


SANDBOX = "refused by the sandbox"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        pytest.param("{{ ''.__class__ }}", SANDBOX, id="str-class"),
        pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", SANDBOX, id="subclasses"),
        pytest.param("{{ event.__init__.__globals__ }}", SANDBOX, id="globals"),
        pytest.param("{{ event.get.__self__ }}", SANDBOX, id="method-self"),
        pytest.param("{{ cycler.__init__.__globals__.os }}", SANDBOX, id="cycler"),
        pytest.param("{{ joiner.__init__.__globals__ }}", SANDBOX, id="joiner"),
        pytest.param("{{ lipsum.__globals__ }}", "'lipsum' is undefined", id="lipsum"),
        pytest.param("{{ namespace.__init__ }}", SANDBOX, id="namespace"),
        pytest.param("{{ range(10) }}", "'range' is undefined", id="range"),
        pytest.param("{{ event.update({'a': 1}) }}", SANDBOX, id="mutate-dict"),
        pytest.param("{{ [].append(1) }}", SANDBOX, id="mutate-list"),
        pytest.param("{{ 'x' * 1000000 }}", SANDBOX, id="huge-string"),
        pytest.param("{{ 2 ** 100000 }}", SANDBOX, id="huge-power"),
        pytest.param("{{ now.__class__.__init__ }}", SANDBOX, id="datetime-internals"),
        pytest.param("{{ '{0.__class__}'.format(event) }}", SANDBOX, id="format-string"),
        pytest.param("{{ event|attr('__class__') }}", SANDBOX, id="attr-filter"),
    ],
)
def test_escape_attempts_fail_as_render_errors(source: str, reason: str) -> None:
    """Refused when the rule loads if the attempt depends on no name (a constant), else as a
    render error naming the rule and field."""
    import datetime

    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    try:
        render(source, {"a": 1}, now=now)
    except TemplateProblem as problem:
        assert reason in str(problem)
    except RenderError as error:
        assert (error.rule_id, error.field) == ("r", "f")
        assert reason in error.reason
    else:
        pytest.fail("rendered")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("{{ self }}", "'self' is not available", id="self"),
        pytest.param("{{ self._TemplateReference__context }}", "'self'", id="self-context"),
        pytest.param("{{ cycler('a') }}", "unknown name 'cycler'", id="cycler"),
        pytest.param("{{ range(3) }}", "unknown name 'range'", id="range"),
        pytest.param("{% include 'x' %}", "'include' is not available", id="include"),
        pytest.param("{% extends 'x' %}", "'extends' is not available", id="extends"),
        pytest.param("{% import 'x' as y %}", "'import' is not available", id="import"),
        pytest.param("{{ evnt.a }}", "unknown name 'evnt'; did you mean 'event'?", id="typo"),
        pytest.param("{{ failure.reason }}", "only available in policy.fallback", id="failure"),
        pytest.param("{{ event.a ", "Jinja2 syntax error", id="syntax"),
    ],
)
def test_refused_when_compiled(source: str, message: str) -> None:
    with pytest.raises(TemplateProblem, match=message.replace("(", r"\(").replace("?", r"\?")):
        compile_template(source, rule_id="r", field="f")


def test_failure_is_allowed_in_fallbacks() -> None:
    from nextstep.engine.rules.expressions import FALLBACK_NAMES

    template = compile_template(
        "{{ failure.reason }}", rule_id="r", field="f", names=FALLBACK_NAMES
    )
    assert template.render({"failure": {"reason": "x"}}) == "x"


def test_strict_undefined_names_the_missing_field() -> None:
    template = compile_template("Hi {{ event.first_name }}", rule_id="loans", field="send.params.1")
    with pytest.raises(RenderError) as caught:
        template.render({"event": {"surname": "x", "phone": "1"}})
    assert str(caught.value) == (
        "rule loans: send.params.1: 'event.first_name' is undefined (event has: phone, surname)"
    )


def test_strict_undefined_suggests_a_close_field() -> None:
    template = compile_template("{{ event.due | date('%d') }}", rule_id="r", field="f")
    with pytest.raises(RenderError, match=r"'event.due' is undefined; did you mean 'due_date'\?"):
        template.render({"event": {"due_date": "2026-01-01", "name": "x"}})


def test_strict_undefined_in_nested_and_item_access() -> None:
    template = compile_template('{{ event.client["last name"] }}', rule_id="r", field="f")
    with pytest.raises(RenderError, match=r"'event.client\['last name'\]' is undefined"):
        template.render({"event": {"client": {"first": "a"}}})


def test_undefined_is_never_rendered_empty() -> None:
    for source in ("{{ event.x ~ '' }}", "{% if event.x %}a{% endif %}", "{{ event.x | length }}"):
        with pytest.raises(RenderError, match="'event.x' is undefined"):
            compile_template(source, rule_id="r", field="f").render({"event": {}})


def test_default_filter_handles_undefined() -> None:
    assert render("{{ event.x | default('none') }}") == "none"
    assert render("{{ event.x | default('none', true) }}", {"x": ""}) == "none"
    assert render("{{ event.x is defined }}") == "False"


def test_event_fields_win_over_dict_methods() -> None:
    assert render("{{ event.items }}-{{ event.keys }}", {"items": "3", "keys": "k"}) == "3-k"


def test_jinja_filters_available() -> None:
    out = render(
        "{{ event.n | title }}|{{ event.t | truncate(9, true, '…') }}|{{ event.u | upper }}",
        {"n": "maria lopez", "t": "a long sentence", "u": "x"},
    )
    assert out == "Maria Lopez|a long s…|X"


def test_constant_template_skips_jinja() -> None:
    template = compile_template("plain text", rule_id="r", field="f")
    assert template.template is None
    assert template.render({}) == "plain text"


def test_set_does_not_leak_between_fields() -> None:
    first = compile_template("{% set x = 'a' %}{{ x }}", rule_id="r", field="f")
    second = compile_template("{{ x | default('none') }}", rule_id="r", field="g", names=None)
    scope = new_scope({"event": {}})
    assert first.render(scope) == "a"
    assert second.render(scope) == "none"


def test_expression_truth_and_errors() -> None:
    expr = compile_expression('event.stage == "docs"', rule_id="r", field="when")
    assert expr.holds({"event": {"stage": "docs"}}) is True
    assert expr.holds({"event": {"stage": "other"}}) is False
    with pytest.raises(RenderError, match="'event.stage' is undefined"):
        expr.holds({"event": {}})
    bare = compile_expression("event.flag", rule_id="r", field="when")
    with pytest.raises(RenderError, match="'event.flag' is undefined"):
        bare.holds({"event": {}})


def test_expression_syntax_errors() -> None:
    for source in ("event.a ==", "event.a }} x", "1 +"):
        with pytest.raises(TemplateProblem, match="Jinja2 syntax error"):
            compile_expression(source, rule_id="r", field="when")


def test_now_is_a_datetime_in_expressions() -> None:
    import datetime

    expr = compile_expression("now.year == 2026", rule_id="r", field="when")
    moment = datetime.datetime(2026, 6, 20, tzinfo=datetime.UTC)
    assert expr.holds({"event": {}, "now": moment})
