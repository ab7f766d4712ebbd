"""What to write instead: the wording of type and TOML syntax errors."""

from __future__ import annotations

from capture.config.wording import toml_hint, type_message


def test_a_quoted_boolean_is_answered_with_the_bare_word() -> None:
    assert type_message("bool_type", "enabled", "yes") == (
        'expected true or false, got the text "yes"; write enabled = true '
        "(without quotes: the rule file is strict about types)"
    )


def test_a_fraction_where_a_whole_number_belongs_is_answered_with_its_whole_part() -> None:
    assert type_message("int_from_float", "burst", 2.5) == (
        "expected a whole number, got 2.5; write burst = 2"
    )
    assert type_message("int_parsing", "burst", "2,5 frames").startswith(
        'expected a whole number, got the text "2,5 frames"; write burst = 2 '
    )


def test_text_without_a_number_gets_an_example_and_a_long_text_is_not_quoted() -> None:
    message = type_message("float_type", "every_s", "x" * 60)
    assert message == (
        "expected a number, got a text; write every_s = 10 (a number) "
        "(without quotes: the rule file is strict about types)"
    )


def test_a_syntax_error_without_a_likely_cause_gets_no_hint() -> None:
    assert toml_hint("Invalid value", "a = [1, 2") == ""
    assert toml_hint("Illegal character '\\n'", 'a = "closed" b') == ""
