"""The condition language's words: text to tokens, and the error every part of the language raises.

Numbers, texts with their escapes, names, keywords and operators, each token
with its position, so `capture.condition_grammar` can say where a mistake is;
characters people type by habit (`=`, `&&`, `≥`, typographic quotes) get a hint
saying what to write instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from capture.errors import CaptureError

__all__ = [
    "ESCAPE_IN",
    "ESCAPE_OUT",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "ConditionError",
    "Token",
    "tokenize",
    "where",
]

#: Longest condition accepted, in characters; a rule is a line or two, not a program.
MAX_LENGTH = 4000
#: Deepest nesting of parentheses and `not`; keeps hostile input from exhausting the stack.
MAX_DEPTH = 32


class ConditionError(CaptureError, ValueError):
    """A condition that does not parse, or names a value no trigger provides.

    `position` is the 0-based offset of the offending character in `text`; the
    message counts columns from 1, as editors do, and says what to write instead.
    """

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text

    def pointer(self) -> str:
        """The offending line of the condition with a caret under the error, for terminals."""
        start = self.text.rfind("\n", 0, self.position) + 1
        end = self.text.find("\n", self.position)
        line = self.text[start : end if end >= 0 else len(self.text)]
        return f"{line}\n{' ' * (self.position - start)}^"


def where(text: str, position: int) -> str:
    if "\n" not in text:
        return f"column {position + 1}"
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


ESCAPE_OUT = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
ESCAPE_IN = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a condition, where it starts, and how it was spelled."""

    kind: str  # number, string, name, keyword, op, punct, end
    value: Any
    position: int
    text: str


_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "exists", "null", "none"})
_SCANNER = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],-])
    """,
    re.VERBOSE | re.ASCII,
)
_NAME_CHAR = re.compile(r"[A-Za-z0-9_.]")
_HINTS = {
    "<>": "did you mean '!='?",
    "=>": "did you mean '>='?",
    "=<": "did you mean '<='?",
    "&&": "did you mean 'and'?",
    "||": "did you mean 'or'?",
    "=": "did you mean '=='?",
    "!": "did you mean 'not' or '!='?",
    "&": "did you mean 'and'?",
    "|": "did you mean 'or'?",
    "≥": "did you mean '>='?",
    "≤": "did you mean '<='?",
    "≠": "did you mean '!='?",
    "“": "typographic quotes do not start a string; did you mean '\"'?",
    "”": "typographic quotes do not start a string; did you mean '\"'?",
    "‘": 'typographic quotes do not start a string; did you mean "\'"?',
    "’": 'typographic quotes do not start a string; did you mean "\'"?',
}


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending in an `end` token; raise `ConditionError` at the first bad one."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in "\"'":
            value, end = _read_string(text, position)
            tokens.append(Token("string", value, position, text[position:end]))
            position = end
            continue
        match = _SCANNER.match(text, position)
        if match is None or (
            match.lastgroup == "op" and text.startswith(("<>", "=>", "=<"), position)
        ):
            raise _unexpected_character(text, position)
        kind, word, end = match.lastgroup or "", match.group(), match.end()
        if kind == "number":
            tokens.append(_number_token(text, word, position, end))
        elif kind == "name":
            lowered = word.lower()
            if lowered in _KEYWORDS:
                tokens.append(Token("keyword", lowered, position, word))
            else:
                tokens.append(Token("name", word, position, word))
        elif kind != "space":
            tokens.append(Token(kind, word, position, word))
        position = end
    tokens.append(Token("end", None, len(text), ""))
    return tokens


def _unexpected_character(text: str, position: int) -> ConditionError:
    for spelling, hint in _HINTS.items():
        if text.startswith(spelling, position):
            return ConditionError(
                f"unexpected '{spelling}' at {where(text, position)}; {hint}", position, text
            )
    char = text[position]
    shown = repr(char)[1:-1] if not char.isprintable() else char
    return ConditionError(f"unexpected '{shown}' at {where(text, position)}", position, text)


def _number_token(text: str, word: str, position: int, end: int) -> Token:
    if end < len(text) and _NAME_CHAR.match(text, end):
        stop = end
        while stop < len(text) and _NAME_CHAR.match(text, stop):
            stop += 1
        raise ConditionError(
            f"'{text[position:stop]}' at {where(text, position)} is not a number; "
            "value names start with a letter or '_'",
            position,
            text,
        )
    value: int | float
    if word.isdigit():
        value = int(word)
    else:
        value = float(word)
        if not math.isfinite(value):
            raise ConditionError(
                f"number '{word}' at {where(text, position)} is too large", position, text
            )
    return Token("number", value, position, word)


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return "".join(out), position + 1
        if char == "\n":
            break
        if char != "\\":
            out.append(char)
            position += 1
            continue
        escaped, position = _read_escape(text, position)
        out.append(escaped)
    raise ConditionError(
        f"text starting at {where(text, start)} is not closed; add a closing {quote}",
        start,
        text,
    )


def _read_escape(text: str, backslash: int) -> tuple[str, int]:
    code = text[backslash + 1 : backslash + 2]
    if code in ESCAPE_IN:
        return ESCAPE_IN[code], backslash + 2
    width = {"u": 4, "U": 8}.get(code)
    digits = text[backslash + 2 : backslash + 2 + width] if width else ""
    if width and re.fullmatch(r"[0-9A-Fa-f]+", digits) and len(digits) == width:
        number = int(digits, 16)
        if number <= 0x10FFFF:
            return chr(number), backslash + 2 + width
    shown = text[backslash : backslash + 2 + (width or 0)]
    raise ConditionError(
        f"unknown escape '{shown}' at {where(text, backslash)}; write '\\\\' for a backslash",
        backslash,
        text,
    )
