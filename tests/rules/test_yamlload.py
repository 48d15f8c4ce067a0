"""Reading YAML: positions, duplicate keys, ${VAR} interpolation, YAML 1.2 scalars."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextstep.engine.rules.yamlload import Mark, format_path, interpolate, load_file, load_text


def test_positions_of_values_and_keys() -> None:
    loaded = load_text("rules:\n  - id: a\n    send:\n      channel: x\n", "f.yaml", {})
    assert loaded.problems == []
    assert loaded.positions.of(("rules", 0, "send", "channel")) == Mark(4, 16)
    assert loaded.positions.key(("rules", 0, "send", "channel")) == Mark(4, 7)
    # a path that was never written falls back to its nearest ancestor
    assert loaded.positions.of(("rules", 0, "send", "nothing")) == Mark(4, 7)


def test_duplicate_key_is_a_problem_at_the_second_key() -> None:
    loaded = load_text("a: 1\nb: 2\na: 3\n", "f.yaml", {})
    assert loaded.data == {"a": 1, "b": 2}
    [problem] = loaded.problems
    assert (problem.line, problem.col) == (3, 1)
    assert "duplicate key 'a' (first written at line 1)" in problem.message


def test_interpolation_with_default_and_escape() -> None:
    text, missing = interpolate("${A}-${B:-two}-$${C}-${D:-}", {"A": "one"})
    assert (text, missing) == ("one-two-${C}-", [])


def test_empty_variable_takes_the_default() -> None:
    assert interpolate("${A:-x}", {"A": ""}) == ("x", [])
    assert interpolate("${A}", {"A": ""}) == ("", [])


def test_missing_variable_names_file_and_line() -> None:
    loaded = load_text("a: 1\ntoken: ${NOPE_TOKEN}\n", "conf.yaml", {})
    [problem] = loaded.problems
    assert (problem.file, problem.line) == ("conf.yaml", 2)
    assert "NOPE_TOKEN is not set" in problem.message
    assert loaded.data["token"] == "${NOPE_TOKEN}"  # kept as written, no second problem


def test_unquoted_interpolation_reads_as_a_scalar() -> None:
    loaded = load_text('port: ${P:-25}\nq: "${P:-25}"\nflag: ${F:-true}\n', "f", {})
    assert loaded.data == {"port": 25, "q": "25", "flag": True}


def test_no_env_leaves_dollar_text_alone() -> None:
    assert load_text("a: ${X}\n", "f", None).data == {"a": "${X}"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("on", "on", id="on-is-text"),
        pytest.param("NO", "NO", id="norway"),
        pytest.param("yes", "yes", id="yes-is-text"),
        pytest.param("true", True, id="true"),
        pytest.param("10:30", "10:30", id="no-sexagesimal"),
        pytest.param("08001", "08001", id="leading-zero-stays-text"),
        pytest.param("0034600111222", "0034600111222", id="phone-with-00"),
        pytest.param("42", 42, id="int"),
        pytest.param("-3", -3, id="negative"),
        pytest.param("0x1f", 31, id="hex"),
        pytest.param("1.5", 1.5, id="float"),
        pytest.param("2026-06-20", "2026-06-20", id="date-as-iso-text"),
        pytest.param("2026-06-20 10:00:00", "2026-06-20T10:00:00", id="datetime-as-iso-text"),
        pytest.param("~", None, id="null"),
    ],
)
def test_scalars_follow_yaml_1_2(text: str, value: object) -> None:
    assert load_text(f"k: {text}\n", "f", {}).data == {"k": value}


def test_keys_are_text_as_written() -> None:
    loaded = load_text("params: {1: a, 2: b}\non: [failed]\n", "f", {})
    assert loaded.data == {"params": {"1": "a", "2": "b"}, "on": ["failed"]}


def test_merge_keys() -> None:
    loaded = load_text("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n", "f", {})
    assert loaded.data["thing"] == {"x": 1, "y": 3}


def test_syntax_error_is_located() -> None:
    loaded = load_text("a:\n  b: 1\n    c: 2\n", "f.yaml", {})
    [problem] = loaded.problems
    assert problem.line == 3
    assert problem.message.startswith("YAML syntax error")
    assert loaded.data is None


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    loaded = load_file(tmp_path / "missing.yaml", {}, display="missing.yaml")
    [problem] = loaded.problems
    assert problem.file == "missing.yaml"
    assert "cannot read" in problem.message


def test_format_path() -> None:
    assert format_path(("rules", 0, "send", "params", "3")) == "rules[0].send.params.3"
    assert format_path(("when", 1)) == "when[1]"
    assert format_path(()) == ""


RULE = """\
rules:
  - id: loan-docs
    description: Ask for documents
    trigger:
      csv: {path: "in/*.csv"}
    send:
      channel: whatsapp
      template: next_step
      language: en
"""


def _indented(line: int, delta: int) -> str:
    lines = RULE.splitlines()
    text = lines[line - 1]
    lines[line - 1] = " " * (len(text) - len(text.lstrip()) + delta) + text.lstrip()
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("line", "delta", "noticed"),
    [
        pytest.param(2, 1, 3, id="list-item-too-deep"),  # YAML stops at line 3
        pytest.param(2, -1, 3, id="list-item-too-shallow"),
        pytest.param(7, -2, 8, id="first-key-dedented-out-of-its-block"),
        pytest.param(8, 2, 8, id="key-too-deep"),
        pytest.param(9, -1, 9, id="key-between-levels"),
    ],
)
def test_indentation_errors_point_at_the_wrong_line(line: int, delta: int, noticed: int) -> None:
    """Issue 12.7: YAML notices a bad indentation at the next line; the problem names the line
    whose indentation is wrong, and the other candidate."""
    loaded = load_text(_indented(line, delta), "r.yaml", {})
    (problem,) = loaded.problems
    assert problem.line == line, problem
    assert "check the indentation of this line" in problem.message
    if noticed != line:
        assert f"(YAML noticed at line {noticed})" in problem.message


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        pytest.param("a: " + "[" * 70 + "]" * 70, "nested deeper than 64 levels", 1, id="depth"),
        pytest.param(
            "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcdef", "bcdefg", strict=True)
            ),
            "expands to more than 100,000 values",
            5,  # e: 111,111 values
            id="alias-bomb",
        ),
        pytest.param("a: &x [*x]\n", "an alias refers to its own anchor", 1, id="alias-loop"),
    ],
)
def test_hostile_documents_are_refused_at_their_line(text: str, message: str, line: int) -> None:
    loaded = load_text(text, "h.yaml", {})
    assert loaded.data is None
    (problem,) = loaded.problems
    assert (problem.line, message in problem.message) == (line, True), problem


def test_a_file_too_large_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("#" * 1_000_001, encoding="utf-8")
    (problem,) = load_file(path, {}).problems
    assert "1,000,001 bytes is too large (at most 1,000,000): not read" in problem.message
