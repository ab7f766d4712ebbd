"""The condition language's grammar: normal form, and how mistakes are reported (capture.condition_grammar)."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capture import condition, condition_grammar
from capture.condition import MAX_DEPTH, MAX_LENGTH, ConditionError, parse_condition


def holds(text: str, **values: object) -> bool:
    return parse_condition(text).evaluate(values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- printing


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("temp>=37.50", "temp >= 37.5"),
        ("state=='NG'AND station IN['S1' ,'S2']", 'state == "NG" and station in ["S1", "S2"]'),
        ("((a)) or (b and c)", "a or b and c"),
        ("(a or b) and c", "(a or b) and c"),
        ("not (a and b)", "not (a and b)"),
        ("NOT a == 1", "not a == 1"),
        ("(a and b) and (c and d)", "a and b and c and d"),
        ("x not in [ -1 , TRUE ]", "x not in [-1, true]"),
        ("exists( part.id )", "exists(part.id)"),
        (r"s == 'it\'s \"x\"\n\u00e9'", 's == "it\'s \\"x\\"\\né"'),
        (r's == "tab\there"', r's == "tab\there"'),
        ("- 5 < x", "-5 < x"),
    ],
)
def test_str_gives_a_normalized_form_that_parses_to_the_same(text: str, normalized: str) -> None:
    condition = parse_condition(text)
    assert str(condition) == normalized
    assert str(parse_condition(str(condition))) == normalized
    assert parse_condition(str(condition)) == condition
    assert repr(condition) == f"Condition({normalized!r})"


def test_escapes_in_texts() -> None:
    assert holds(r'code == "a\\b"', code="a\\b")
    assert holds(r'code == "\u00e9"', code="é")
    assert holds(r'code == "\U0001F600"', code="😀")
    assert holds(r"code == '\t\r\0'", code="\t\r\0")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("temp = 5", 5, "unexpected '=' at column 6; did you mean '=='?"),
        ("a && b", 2, "unexpected '&&' at column 3; did you mean 'and'?"),
        ("a || b", 2, "did you mean 'or'?"),
        ("!a", 0, "did you mean 'not' or '!='?"),
        ("a <> 1", 2, "unexpected '<>' at column 3; did you mean '!='?"),
        ("a => 1", 2, "did you mean '>='?"),
        ("a =< 1", 2, "did you mean '<='?"),
        ("a ≥ 1", 2, "did you mean '>='?"),
        ("a == “NG”", 5, "typographic quotes"),
        (
            "temp >= ",
            8,
            "expected a value name, number, text or true/false at column 9, found the end of the condition",
        ),
        ("(a and b", 8, "'(' at column 1 is never closed; expected ')' at column 9"),
        ("a)", 1, "')' at column 2 has no matching '('"),
        ("1 < a < 3", 6, "comparisons cannot be chained: '<' at column 7; write 'a < b and b < c'"),
        ("x in 5", 5, "expected '[' after 'in' at column 6, found '5'"),
        ("x in [a]", 6, "lists hold numbers, texts or true/false; 'a' at column 7 is a value name"),
        ("x in [1 2]", 8, "expected ',' or ']' at column 9, found '2'"),
        ('"temp" > 5', 7, "did you mean the value temp (without quotes)?"),
        ("1 == 1", 2, "both sides of '==' at column 3 are constants"),
        ("5 in [5]", 2, "the left side of 'in' at column 3 must be a value name"),
        (
            "x == null",
            5,
            "'null' at column 6 is not a value; a missing or null value never matches",
        ),
        ("x == None", 5, "test it with exists(name)"),
        ('x == "abc', 5, 'text starting at column 6 is not closed; add a closing "'),
        (r'x == "a\qb"', 7, r"unknown escape '\q' at column 8"),
        (r'x == "\u12"', 6, "unknown escape '\\u12\"' at column 7"),
        ("5abc > 1", 0, "'5abc' at column 1 is not a number"),
        ("1e999 < x", 0, "number '1e999' at column 1 is too large"),
        ("x == -a", 6, "expected a number after '-' at column 7, found 'a'"),
        ("temp", None, None),
        ("42", 0, "42 at column 1 is not a condition on its own"),
        ("a b", 2, "unexpected 'b' at column 3; expected 'and', 'or' or the end of the condition"),
        ("exists temp", 7, "expected '(' after 'exists' at column 8"),
        ("exists(1)", 7, "expected a value name at column 8"),
        ("exists(a b)", 9, "expected ')' at column 10, found 'b'"),
        ("", 0, "the condition is empty"),
        ("   ", 3, "the condition is empty"),
        ("a and", 5, "found the end of the condition"),
        ("a\x00", 1, r"unexpected '\x00' at column 2"),
        ("temp > 5 and\nstate = 'NG'", 19, "unexpected '=' at line 2, column 7"),
        ("part. == 1", 4, "unexpected '.' at column 5"),
    ],
)
def test_errors_say_where_and_what_to_write(
    text: str, position: int | None, message: str | None
) -> None:
    if message is None:
        parse_condition(text)
        return
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert message in str(caught.value)
    assert caught.value.position == position
    assert caught.value.text == text
    assert isinstance(caught.value, ValueError)


def test_every_documented_example_condition_parses() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "rules-language.md").read_text(encoding="utf-8")
    examples = re.findall(r"^condition = '([^']+)'", docs, flags=re.MULTILINE)
    assert len(examples) >= 6
    for documented in examples:
        parse_condition(documented)


def test_pointer_shows_a_caret_under_the_error() -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition("temp > 5 and\nstate = 'NG'")
    assert caught.value.pointer() == "state = 'NG'\n      ^"


def test_nesting_is_bounded_without_exhausting_the_stack() -> None:
    parse_condition("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    parse_condition("not " * MAX_DEPTH + "a")
    with pytest.raises(ConditionError, match="nests too deeply"):
        parse_condition("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ConditionError, match="nests too deeply"):
        parse_condition("not " * 900 + "a")
    with pytest.raises(ConditionError, match="nests too deeply"):
        parse_condition("(" * 3000)


def test_length_is_bounded_and_long_flat_conditions_evaluate() -> None:
    wide = " or ".join(f"x == {n}" for n in range(300))
    assert len(wide) < MAX_LENGTH
    assert parse_condition(wide).evaluate({"x": 299})
    with pytest.raises(ConditionError, match="too long"):
        parse_condition("a or " * MAX_LENGTH + "a")


# --------------------------------------------------------------------------- properties


@given(
    st.lists(
        st.sampled_from(
            [
                *string.printable,
                "and ",
                "or ",
                "not ",
                " in ",
                "==",
                "é",
                "“",
                "\x00",
                "\\u",
                "exists(",
            ]
        ),
        max_size=40,
    ).map("".join)
)
@example("((((((((")
@example("x in [")
@example('"\\')
@example("not")
@example("- -1 < a")
@settings(max_examples=500, deadline=None)
def test_parsing_random_text_raises_nothing_but_condition_error(text: str) -> None:
    try:
        condition = parse_condition(text)
    except ConditionError as error:
        assert 0 <= error.position <= len(text)
        return
    assert str(parse_condition(str(condition))) == str(condition)


def test_every_node_kind_of_the_grammar_has_a_meaning() -> None:
    kinds = {
        kind
        for kind in vars(condition_grammar).values()
        if isinstance(kind, type)
        and issubclass(kind, condition_grammar.Node)
        and kind not in (condition_grammar.Node, condition_grammar.Junction)
    }
    assert kinds == set(condition._COMPILERS)
