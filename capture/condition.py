"""Rule conditions: a small, safe expression language, parsed once and compiled to closures.

A technician writes `temp >= 37.5` or `state == "NG" and station in ["S1", "S2"]`
in rules.toml. This module tokenizes and parses that text by hand (never Python
`eval`, never `ast` on the text), reports mistakes with their column, and compiles
the tree to plain closures, so evaluating a condition for each event costs a few
dictionary look-ups and comparisons. Measured (best of 5) on a shared 2-vCPU VM
where `sum(range(100))` takes 1.4 us: `temp >= 37.5` in 0.6 us for a number and
2.3 us for the text "37.9"; `state == "NG" and station in ["S1", "S2"]` in 2.7 us.

Semantics, chosen for values that arrive as text from files, serial lines and MQTT:

- When one side of a comparison is a number, the other side's text is read as a
  number (`"37.9"`, `"37,9"` and `" 37.9\\r\\n"` compare as 37.9); text that is not a number
  is never equal to, smaller or larger than a number.
- Two texts compare exactly (case-sensitive, no trimming).
- A value that is missing, null or NaN makes every comparison false, `!=` and
  `not in` included: a missing value never matches. Use `exists(name)` to test
  for it, `not exists(name)` for its absence.
- Values of kinds that do not meet (a text that is not a number, and a number)
  are never equal, so `!=` is true and `==`, `<`, `>`... are false; no
  comparison ever raises.
- `true`/`false` equal the booleans, the numbers 1/0, and the texts true/false,
  on/off, yes/no, 1/0 (any case). Booleans are never ordered against each other.
- A value name alone is a truthiness test: false when missing, null, false, 0,
  empty text, or the text 0/false/off/no (any case); true otherwise.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from capture.errors import CaptureError
from capture.events import Value

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Condition",
    "ConditionError",
    "parse_condition",
]

#: Longest condition accepted, in characters; a rule is a line or two, not a program.
MAX_LENGTH = 4000
#: Deepest nesting of parentheses and `not`; keeps hostile input from exhausting the stack.
MAX_DEPTH = 32

Test = Callable[[Mapping[str, Any]], bool]


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


def _where(text: str, position: int) -> str:
    if "\n" not in text:
        return f"column {position + 1}"
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


# --------------------------------------------------------------------------- values


# Group 2 (a fraction) or 3 (an exponent) make it a float; without them it is an integer.
# A decimal comma is read as the triggers read it: many European devices print "37,5".
_NUMBER_TEXT = re.compile(r"\s*([+-]?(?:\d+([.,]\d*)?|([.,]\d+))([eE][+-]?\d+)?)\s*", re.ASCII)
_TRUE_WORDS = frozenset({"true", "on", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "off", "no", "0"})


def _number(text: str) -> int | float | None:
    """The number a text spells (surrounding whitespace allowed), or None."""
    match = _NUMBER_TEXT.fullmatch(text)
    if match is None:
        return None
    digits, fraction, bare_fraction, exponent = match.groups()
    if fraction is None and bare_fraction is None and exponent is None:
        try:
            return int(digits)
        except ValueError:  # more digits than Python converts (4300): no number we compare
            return None
    number = float(digits.replace(",", "."))
    return number if math.isfinite(number) else None


def _word_bool(text: str) -> bool | None:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


Pair = tuple[Any, Any, bool]


def _pair(left: object, right: object) -> Pair | None:
    """Bring two values to a comparable pair, with whether they may be ordered.

    None means they cannot be compared at all: one is missing, or their kinds
    do not meet (a non-numeric text and a number).
    """
    if _missing(left) or _missing(right):
        return None
    left_kind, right_kind = _kind(left), _kind(right)
    if left_kind is None or right_kind is None:
        return None
    if left_kind == "str" and right_kind != "str":
        return _swap(_COERCIONS[right_kind, left_kind](right, left))
    return _COERCIONS[left_kind, right_kind](left, right)


def _both(left: Any, right: Any, ordered: bool) -> Pair | None:
    return None if right is None else (left, right, ordered)


def _swap(pair: Pair | None) -> Pair | None:
    return None if pair is None else (pair[1], pair[0], pair[2])


# How each combination of kinds becomes a comparable pair; text meets the other kinds
# on their terms (read as a number, or as a yes/no word).
_COERCIONS: dict[tuple[str, str], Callable[[Any, Any], Pair | None]] = {
    ("number", "number"): lambda left, right: (left, right, True),
    ("str", "str"): lambda left, right: (left, right, True),
    ("bool", "bool"): lambda left, right: (left, right, False),
    ("number", "str"): lambda left, right: _both(left, _number(right), True),
    ("bool", "str"): lambda left, right: _both(left, _word_bool(right), False),
    ("bool", "number"): lambda left, right: (int(left), right, True),
    ("number", "bool"): lambda left, right: (left, int(right), True),
}


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return None


def _equal(left: object, right: object) -> bool:
    pair = _pair(left, right)
    return pair is not None and pair[0] == pair[1]


def _truthy(value: object) -> bool:
    if _missing(value):
        return False
    if isinstance(value, str):
        number = _number(value)
        if number is not None:
            return number != 0
        return value != "" and _word_bool(value) is not False
    if isinstance(value, (bool, int, float)):
        return bool(value)
    return False


_ORDERING = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _comparer(op: str) -> Callable[[object, object], bool]:
    """A function comparing two values with `op` under the module's coercion rules."""
    if op == "==":
        return _equal
    if op == "!=":

        def different(left: object, right: object) -> bool:
            if _missing(left) or _missing(right):
                return False
            pair = _pair(left, right)
            return pair is None or pair[0] != pair[1]  # kinds that do not meet differ

        return different
    order = _ORDERING[op]

    def ordered(left: object, right: object) -> bool:
        pair = _pair(left, right)
        return pair is not None and pair[2] and order(pair[0], pair[1])

    return ordered


_NATIVE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    **_ORDERING,
}


def _literal_comparer(op: str, literal: Value) -> Callable[[object], bool]:
    """The hot path: a value against a literal, with the common kinds decided first.

    A number literal meets native numbers and numeric text directly; a text literal
    meets text directly; everything else takes the general rules of `_comparer`.
    """
    slow, native = _comparer(op), _NATIVE[op]
    if isinstance(literal, str):

        def against_text(value: object) -> bool:
            if type(value) is str:
                return native(value, literal)
            return slow(value, literal)

        return against_text
    if isinstance(literal, bool):
        return lambda value: slow(value, literal)

    def against_number(value: object) -> bool:
        kind = type(value)
        if kind is int or (kind is float and not math.isnan(value)):  # type: ignore[arg-type]
            return native(value, literal)
        if kind is str:
            number = _number(value)  # type: ignore[arg-type]
            if number is not None:
                return native(number, literal)
        return slow(value, literal)

    return against_number


# --------------------------------------------------------------------------- tree


def _quote(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in _ESCAPE_OUT:
            out.append(_ESCAPE_OUT[char])
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_ESCAPE_OUT = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
_ESCAPE_IN = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _literal_text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    return repr(value)


@dataclass(frozen=True, slots=True)
class _Name:
    name: str
    position: int

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Value
    position: int

    def __str__(self) -> str:
        return _literal_text(self.value)


_Operand = _Name | _Literal

# Binding strength, for printing parentheses only where they are needed.
_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4


class _Node:
    precedence = _ATOM

    def compile(self) -> Test:
        raise NotImplementedError

    def names(self) -> Iterable[_Name]:
        raise NotImplementedError

    def wrapped(self, precedence: int) -> str:
        text = str(self)
        return f"({text})" if self.precedence < precedence else text


@dataclass(frozen=True, slots=True)
class _Constant(_Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"

    def compile(self) -> Test:
        value = self.value
        return lambda values: value

    def names(self) -> Iterable[_Name]:
        return ()


@dataclass(frozen=True, slots=True)
class _Truthy(_Node):
    operand: _Name

    def __str__(self) -> str:
        return str(self.operand)

    def compile(self) -> Test:
        name = self.operand.name
        return lambda values: _truthy(values.get(name))

    def names(self) -> Iterable[_Name]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class _Exists(_Node):
    operand: _Name

    def __str__(self) -> str:
        return f"exists({self.operand})"

    def compile(self) -> Test:
        name = self.operand.name
        return lambda values: not _missing(values.get(name))

    def names(self) -> Iterable[_Name]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class _Compare(_Node):
    left: _Operand
    op: str
    right: _Operand

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def compile(self) -> Test:
        left, right, op = self.left, self.right, self.op
        if isinstance(left, _Literal):  # keep the value name on the left
            left, right, op = right, left, _MIRRORED[op]
        name = left.name  # type: ignore[union-attr]
        if isinstance(right, _Name):
            other, compare = right.name, _comparer(op)
            return lambda values: compare(values.get(name), values.get(other))
        against = _literal_comparer(op, right.value)
        return lambda values: against(values.get(name))

    def names(self) -> Iterable[_Name]:
        return [side for side in (self.left, self.right) if isinstance(side, _Name)]


_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True, slots=True)
class _In(_Node):
    operand: _Name
    items: tuple[_Literal, ...]
    negated: bool

    def __str__(self) -> str:
        items = ", ".join(str(item) for item in self.items)
        return f"{self.operand} {'not in' if self.negated else 'in'} [{items}]"

    def compile(self) -> Test:
        name, negated = self.operand.name, self.negated
        items = tuple(item.value for item in self.items)
        texts = frozenset(item for item in items if isinstance(item, str))

        def member(values: Mapping[str, Any]) -> bool:
            value = values.get(name)
            if _missing(value):
                return False
            found = (type(value) is str and value in texts) or any(
                _equal(value, item) for item in items
            )
            return found != negated

        return member

    def names(self) -> Iterable[_Name]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class _Not(_Node):
    operand: _Node
    precedence = _NOT

    def __str__(self) -> str:
        return f"not {self.operand.wrapped(_NOT)}"

    def compile(self) -> Test:
        test = self.operand.compile()
        return lambda values: not test(values)

    def names(self) -> Iterable[_Name]:
        return self.operand.names()


@dataclass(frozen=True, slots=True)
class _Junction(_Node):
    """Operands joined by `and` or `or`, kept flat so long chains never recurse."""

    operands: tuple[_Node, ...]
    word: ClassVar[str]
    combine: ClassVar[Callable[[Iterable[bool]], bool]]

    def __str__(self) -> str:
        joiner = f" {self.word} "
        return joiner.join(operand.wrapped(self.precedence + 1) for operand in self.operands)

    def compile(self) -> Test:
        tests = tuple(operand.compile() for operand in self.operands)
        combine = type(self).combine
        return lambda values: combine(test(values) for test in tests)

    def names(self) -> Iterable[_Name]:
        return [name for operand in self.operands for name in operand.names()]


class _And(_Junction):
    __slots__ = ()
    precedence, word, combine = _AND, "and", all


class _Or(_Junction):
    __slots__ = ()
    precedence, word, combine = _OR, "or", any


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
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


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in "\"'":
            value, end = _read_string(text, position)
            tokens.append(_Token("string", value, position, text[position:end]))
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
                tokens.append(_Token("keyword", lowered, position, word))
            else:
                tokens.append(_Token("name", word, position, word))
        elif kind != "space":
            tokens.append(_Token(kind, word, position, word))
        position = end
    tokens.append(_Token("end", None, len(text), ""))
    return tokens


def _unexpected_character(text: str, position: int) -> ConditionError:
    for spelling, hint in _HINTS.items():
        if text.startswith(spelling, position):
            return ConditionError(
                f"unexpected '{spelling}' at {_where(text, position)}; {hint}", position, text
            )
    char = text[position]
    shown = repr(char)[1:-1] if not char.isprintable() else char
    return ConditionError(f"unexpected '{shown}' at {_where(text, position)}", position, text)


def _number_token(text: str, word: str, position: int, end: int) -> _Token:
    if end < len(text) and _NAME_CHAR.match(text, end):
        stop = end
        while stop < len(text) and _NAME_CHAR.match(text, stop):
            stop += 1
        raise ConditionError(
            f"'{text[position:stop]}' at {_where(text, position)} is not a number; "
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
                f"number '{word}' at {_where(text, position)} is too large", position, text
            )
    return _Token("number", value, position, word)


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
        f"text starting at {_where(text, start)} is not closed; add a closing {quote}",
        start,
        text,
    )


def _read_escape(text: str, backslash: int) -> tuple[str, int]:
    code = text[backslash + 1 : backslash + 2]
    if code in _ESCAPE_IN:
        return _ESCAPE_IN[code], backslash + 2
    width = {"u": 4, "U": 8}.get(code)
    digits = text[backslash + 2 : backslash + 2 + width] if width else ""
    if width and re.fullmatch(r"[0-9A-Fa-f]+", digits) and len(digits) == width:
        number = int(digits, 16)
        if number <= 0x10FFFF:
            return chr(number), backslash + 2 + width
    shown = text[backslash : backslash + 2 + (width or 0)]
    raise ConditionError(
        f"unknown escape '{shown}' at {_where(text, backslash)}; write '\\\\' for a backslash",
        backslash,
        text,
    )


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the token list; one method per grammar rule.

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | primary
    primary    := "(" or ")" | "exists" "(" NAME ")" | comparison
    comparison := operand [ OP operand | ["not"] "in" list ]
    operand    := NAME | literal
    literal    := NUMBER | "-" NUMBER | STRING | "true" | "false"
    list       := "[" [literal ("," literal)* [","]] "]"
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, value: object = None) -> bool:
        token = self.token
        return token.kind == kind and (value is None or token.value == value)

    def error(self, message: str, token: _Token | None = None) -> ConditionError:
        token = token or self.token
        return ConditionError(
            message.replace("HERE", _where(self.text, token.position)), token.position, self.text
        )

    def found(self, token: _Token | None = None) -> str:
        token = token or self.token
        return "the end of the condition" if token.kind == "end" else f"'{token.text}'"

    def parse(self) -> _Node:
        if self.at("end"):
            raise self.error("the condition is empty; remove it to fire on every event")
        node = self.parse_or()
        if not self.at("end"):
            if self.at("op"):
                raise self.error(
                    f"comparisons cannot be chained: {self.found()} at HERE; "
                    "write 'a < b and b < c'"
                )
            if self.at("punct", ")"):
                raise self.error("')' at HERE has no matching '('")
            raise self.error(
                f"unexpected {self.found()} at HERE; expected 'and', 'or' or the end of the condition"
            )
        return node

    def parse_or(self) -> _Node:
        operands = [self.parse_and()]
        while self.at("keyword", "or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else _Or(_flatten(operands, _Or))

    def parse_and(self) -> _Node:
        operands = [self.parse_not()]
        while self.at("keyword", "and"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else _And(_flatten(operands, _And))

    def parse_not(self) -> _Node:
        if not self.at("keyword", "not"):
            return self.parse_primary()
        self.enter()
        self.advance()
        node = _Not(self.parse_not())
        self.depth -= 1
        return node

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"the condition nests too deeply at HERE (more than {MAX_DEPTH} levels)"
            )

    def parse_primary(self) -> _Node:
        if self.at("punct", "("):
            opening = self.advance()
            self.enter()
            node = self.parse_or()
            self.depth -= 1
            if not self.at("punct", ")"):
                raise self.error(
                    f"'(' at {_where(self.text, opening.position)} is never closed; "
                    f"expected ')' at HERE, found {self.found()}"
                )
            self.advance()
            return node
        if self.at("keyword", "exists"):
            return self.parse_exists()
        return self.parse_comparison()

    def parse_exists(self) -> _Node:
        self.advance()
        if not self.at("punct", "("):
            raise self.error(
                f"expected '(' after 'exists' at HERE, found {self.found()}; e.g. exists(temp)"
            )
        self.advance()
        if not self.at("name"):
            raise self.error(
                f"expected a value name at HERE, found {self.found()}; e.g. exists(temp)"
            )
        name = self.advance()
        if not self.at("punct", ")"):
            raise self.error(f"expected ')' at HERE, found {self.found()}")
        self.advance()
        return _Exists(_Name(name.value, name.position))

    def parse_comparison(self) -> _Node:
        left = self.parse_operand()
        if self.at("op"):
            op = self.advance()
            right = self.parse_operand()
            if isinstance(left, _Literal) and isinstance(right, _Literal):
                raise self.error(_constant_message(left, op.value, right, self.text), op)
            return _Compare(left, op.value, right)
        negated = self.at("keyword", "not") and self.tokens[self.index + 1].value == "in"
        if negated:
            self.advance()
        if self.at("keyword", "in"):
            return self.parse_in(left, negated)
        if isinstance(left, _Name):
            return _Truthy(left)
        if isinstance(left.value, bool):
            return _Constant(left.value)
        raise self.error(
            f"{_literal_text(left.value)} at HERE is not a condition on its own; "
            "compare it with a value, e.g. temp >= 37.5",
            self.tokens[self.index - 1],
        )

    def parse_in(self, left: _Operand, negated: bool) -> _Node:
        keyword = self.advance()
        if not isinstance(left, _Name):
            raise self.error(
                f"the left side of 'in' at HERE must be a value name, not {left}", keyword
            )
        if not self.at("punct", "["):
            raise self.error(
                f"expected '[' after 'in' at HERE, found {self.found()}; "
                'e.g. station in ["S1", "S2"]'
            )
        self.advance()
        items: list[_Literal] = []
        while not self.at("punct", "]"):
            item = self.parse_operand()
            if isinstance(item, _Name):
                raise self.error(
                    f"lists hold numbers, texts or true/false; '{item.name}' at HERE is a value name "
                    f'(put texts in quotes: "{item.name}")',
                    self.tokens[self.index - 1],
                )
            items.append(item)
            if self.at("punct", ","):
                self.advance()
            elif not self.at("punct", "]"):
                raise self.error(f"expected ',' or ']' at HERE, found {self.found()}")
        self.advance()
        return _In(left, tuple(items), negated)

    def parse_operand(self) -> _Operand:
        token = self.token
        if token.kind == "name":
            self.advance()
            return _Name(token.value, token.position)
        if token.kind in ("number", "string"):
            self.advance()
            return _Literal(token.value, token.position)
        if token.kind == "keyword" and token.value in ("true", "false"):
            self.advance()
            return _Literal(token.value == "true", token.position)
        if token.kind == "punct" and token.value == "-":
            self.advance()
            if not self.at("number"):
                raise self.error(f"expected a number after '-' at HERE, found {self.found()}")
            number = self.advance()
            return _Literal(-number.value, token.position)
        if token.kind == "keyword" and token.value in ("null", "none"):
            raise self.error(
                f"'{token.text}' at HERE is not a value; a missing or null value never matches a "
                "comparison: test it with exists(name) or not exists(name)"
            )
        raise self.error(
            f"expected a value name, number, text or true/false at HERE, found {self.found()}"
        )


def _flatten(operands: list[_Node], kind: type[_And] | type[_Or]) -> tuple[_Node, ...]:
    flat: list[_Node] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, kind) else (operand,))
    return tuple(flat)


def _constant_message(left: _Literal, op: str, right: _Literal, text: str) -> str:
    message = f"both sides of '{op}' at HERE are constants, so the result never changes"
    quoted = next(
        (
            side.value
            for side in (left, right)
            if isinstance(side.value, str) and re.fullmatch(r"[A-Za-z_]\w*", side.value)
        ),
        None,
    )
    if quoted is not None:
        return f"{message}; did you mean the value {quoted} (without quotes)?"
    return message


# --------------------------------------------------------------------------- public


class Condition:
    """A parsed condition: evaluate it on an event's values, print it, list its names.

    Build one with `parse_condition`. Evaluation never raises and never re-parses.
    """

    __slots__ = ("_node", "_test", "names", "source")

    def __init__(self, source: str, node: _Node) -> None:
        self.source = source
        self._node = node
        self._test = node.compile()
        #: The value names the condition reads, to check against what its triggers provide.
        self.names: frozenset[str] = frozenset(name.name for name in node.names())

    def evaluate(self, values: Mapping[str, Value]) -> bool:
        """True when the event's values satisfy the condition (see the module doc for rules)."""
        return self._test(values)

    def check_names(self, available: Iterable[str]) -> list[ConditionError]:
        """One error per use of a value name not in `available`, with a did-you-mean hint."""
        known = sorted(set(available))
        errors = []
        for name in self._node.names():
            if name.name in known:
                continue
            message = f"unknown value '{name.name}' at {_where(self.source, name.position)}"
            close = difflib.get_close_matches(name.name, known, n=1)
            if close:
                message += f" (did you mean '{close[0]}'?)"
            elif known:
                message += f"; the triggers provide: {', '.join(known)}"
            else:
                message += "; the triggers provide no values (list them in the trigger's `fields`)"
            errors.append(ConditionError(message, name.position, self.source))
        return errors

    def __str__(self) -> str:
        return str(self._node)

    def __repr__(self) -> str:
        return f"Condition({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def parse_condition(text: str) -> Condition:
    """Parse a condition as written in rules.toml; raise `ConditionError` saying where and why."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(
            f"the condition is too long ({len(text)} characters, at most {MAX_LENGTH})",
            MAX_LENGTH,
            text,
        )
    return Condition(text, _Parser(text).parse())
