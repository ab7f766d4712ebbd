"""Turns the parsers' wording into what a technician should write instead.

pydantic says `Input should be a valid number, unable to parse string as a
number` and tomllib says `Illegal character '\\n'`; a person editing
rules.toml over SSH needs `write timeout_s = 10` and `a string is not closed`.
Only the numbers, booleans and characters a person typed are quoted back,
never a string value, which may be a password.
"""

from __future__ import annotations

import re
from typing import Any

#: pydantic error types of a value of the wrong kind, and what kind was expected.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text in quotes",
}
_LEADING_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))")
_TYPOGRAPHIC_QUOTES = "\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b\u00ab\u00bb"


def is_type_error(kind: str) -> bool:
    """Whether a pydantic error type means "a value of the wrong kind" (a number, a boolean, or
    text written without quotes)."""
    return kind in _EXPECTED


def type_message(kind: str, option: str, given: Any) -> str:
    """What to write instead of a number or boolean of the wrong kind (`timeout_s = "10s"`).

    The file is read strictly: `burst = "3"` is refused rather than guessed,
    because quotes around a number are as likely a mistake as a typo is.
    """
    expected = _EXPECTED[kind]
    if kind == "string_type":
        # `password = 12345`, `host = 10`: the value is not shown, it may be a password.
        return f'expected {expected}, got {_kind_of(given)}; write {option} = "..." with quotes'
    if isinstance(given, str):
        shown = f'the text "{given}"' if len(given) <= 40 else "a text"
        suggestion = _suggestion(kind, option, given)
        return (
            f"expected {expected}, got {shown}; write {suggestion} "
            "(without quotes: the rule file is strict about types)"
        )
    if isinstance(given, float) and kind.startswith("int"):
        return f"expected a whole number, got {given!r}; write {option} = {int(given)}"
    return f"expected {expected}, got {_kind_of(given)}"


def _suggestion(kind: str, option: str, given: str) -> str:
    if kind.startswith("bool"):
        truthy = given.strip().lower() in ("true", "yes", "on", "1")
        return f"{option} = {'true' if truthy else 'false'}"
    match = _LEADING_NUMBER.match(given.replace(",", "."))
    if match is None:
        return f"{option} = 10 (a number)"
    number = match.group(1)
    if kind.startswith("int") and "." in number:
        number = number.split(".")[0] or "0"
    return f"{option} = {number}"


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a value of another kind"


def toml_hint(message: str, line_text: str) -> str:
    """The likely cause of a TOML syntax error on `line_text`, or '' when there is none to name."""
    if any(quote in line_text for quote in _TYPOGRAPHIC_QUOTES):
        return (
            "; the line has typographic quotes (“ ” ‘ ’), as a word processor writes them: "
            "type plain quotes \" or ' instead"
        )
    runs_to_the_end = message.startswith("Illegal character '\\n'") or message.endswith(
        "at the end of the file"
    )
    if runs_to_the_end and (line_text.count('"') % 2 or line_text.count("'") % 2):
        return "; a string is not closed: add the missing quote at the end of the value"
    return ""
