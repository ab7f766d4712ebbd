"""The condition language's grammar: text to a syntax tree, with mistakes reported where they are.

This module knows what a condition *says*; what it *means* (comparisons
between text and numbers, missing values, truthiness) is `capture.condition`.
The tree prints itself back in a normal form (`str(tree)` parses to the same tree).

condition  := or
or         := and ("or" and)*
and        := not ("and" not)*
not        := "not" not | primary
primary    := "(" or ")" | "exists" "(" NAME ")" | comparison
comparison := operand [ OP operand | ["not"] "in" list ]
operand    := NAME | literal
literal    := NUMBER | "-" NUMBER | STRING | "true" | "false"
list       := "[" [literal ("," literal)* [","]] "]"

Tokenized and parsed by hand, recursive descent, one method per rule; never
Python `eval`, never `ast` on the text. A grammar library was tried and not
taken: lark 1.3 (LALR) parses this grammar in a dozen lines, but its errors
say which token was unexpected and not what the technician should write:
for `(a and b` it cannot name the '(' that is never closed (the opening
bracket is on its parser stack, not in the error); at the end of the text it
reports the column of the last token (`temp >= ` at column 6, not 9); an
unclosed text or `=` for `==` come back as "no terminal matches", without the
hint. Every message the tests assert would need the state machine's context
rebuilt from the error, a second parser in all but name. The hand parser
(about 200 lines here and the tokenizer's 150 in `capture.condition_tokens`)
gives each message at the point where it knows what was meant.

At about 475 lines this module is a little over the ~450 the project aims
for, on purpose: each parse method builds one node kind of the tree above
it, and they read best side by side; the rest is this docstring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from capture.condition_tokens import (
    ESCAPE_OUT,
    MAX_DEPTH,
    MAX_LENGTH,
    ConditionError,
    Token,
    tokenize,
    where,
)
from capture.events import Value

__all__ = [
    "And",
    "Compare",
    "Constant",
    "Exists",
    "In",
    "Junction",
    "Literal",
    "Name",
    "Node",
    "Not",
    "Operand",
    "Or",
    "Parser",
    "Truthy",
    "parse_tree",
]

# --------------------------------------------------------------------------- tree


def _quote(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in ESCAPE_OUT:
            out.append(ESCAPE_OUT[char])
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _literal_text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    return repr(value)


@dataclass(frozen=True, slots=True)
class Name:
    """A value name as written, e.g. `part.id`."""

    name: str
    position: int

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Literal:
    """A number, text or true/false written in the condition."""

    value: Value
    position: int

    def __str__(self) -> str:
        return _literal_text(self.value)


Operand = Name | Literal

# Binding strength, for printing parentheses only where they are needed.
_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4


class Node:
    """A condition or part of one; `names` lists the value names it reads."""

    precedence = _ATOM

    def names(self) -> Iterable[Name]:
        """Every value name the node reads, in the order written, repeats included."""
        raise NotImplementedError

    def wrapped(self, precedence: int) -> str:
        """The node printed, in parentheses only where a `precedence` context needs them."""
        text = str(self)
        return f"({text})" if self.precedence < precedence else text


@dataclass(frozen=True, slots=True)
class Constant(Node):
    """`true` or `false` alone."""

    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"

    def names(self) -> Iterable[Name]:
        return ()


@dataclass(frozen=True, slots=True)
class Truthy(Node):
    """A value name alone: a truthiness test."""

    operand: Name

    def __str__(self) -> str:
        return str(self.operand)

    def names(self) -> Iterable[Name]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Exists(Node):
    """`exists(name)`."""

    operand: Name

    def __str__(self) -> str:
        return f"exists({self.operand})"

    def names(self) -> Iterable[Name]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """Two operands and a comparison operator; never two constants."""

    left: Operand
    op: str
    right: Operand

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def names(self) -> Iterable[Name]:
        return [side for side in (self.left, self.right) if isinstance(side, Name)]


@dataclass(frozen=True, slots=True)
class In(Node):
    """`name in [...]` or `name not in [...]`."""

    operand: Name
    items: tuple[Literal, ...]
    negated: bool

    def __str__(self) -> str:
        items = ", ".join(str(item) for item in self.items)
        return f"{self.operand} {'not in' if self.negated else 'in'} [{items}]"

    def names(self) -> Iterable[Name]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Not(Node):
    """`not` and its operand."""

    operand: Node
    precedence = _NOT

    def __str__(self) -> str:
        return f"not {self.operand.wrapped(_NOT)}"

    def names(self) -> Iterable[Name]:
        return self.operand.names()


@dataclass(frozen=True, slots=True)
class Junction(Node):
    """Operands joined by `and` or `or`, kept flat so long chains never recurse."""

    operands: tuple[Node, ...]
    word: ClassVar[str]

    def __str__(self) -> str:
        joiner = f" {self.word} "
        return joiner.join(operand.wrapped(self.precedence + 1) for operand in self.operands)

    def names(self) -> Iterable[Name]:
        return [name for operand in self.operands for name in operand.names()]


class And(Junction):
    """Operands joined by `and`."""

    __slots__ = ()
    precedence, word = _AND, "and"


class Or(Junction):
    """Operands joined by `or`."""

    __slots__ = ()
    precedence, word = _OR, "or"


# --------------------------------------------------------------------------- parser


class Parser:
    """Recursive descent over the token list; one method per rule of the module doc's grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, value: object = None) -> bool:
        token = self.token
        return token.kind == kind and (value is None or token.value == value)

    def error(self, message: str, token: Token | None = None) -> ConditionError:
        token = token or self.token
        return ConditionError(
            message.replace("HERE", where(self.text, token.position)), token.position, self.text
        )

    def found(self, token: Token | None = None) -> str:
        token = token or self.token
        return "the end of the condition" if token.kind == "end" else f"'{token.text}'"

    def parse(self) -> Node:
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

    def parse_or(self) -> Node:
        operands = [self.parse_and()]
        while self.at("keyword", "or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(_flatten(operands, Or))

    def parse_and(self) -> Node:
        operands = [self.parse_not()]
        while self.at("keyword", "and"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else And(_flatten(operands, And))

    def parse_not(self) -> Node:
        if not self.at("keyword", "not"):
            return self.parse_primary()
        self.enter()
        self.advance()
        node = Not(self.parse_not())
        self.depth -= 1
        return node

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"the condition nests too deeply at HERE (more than {MAX_DEPTH} levels)"
            )

    def parse_primary(self) -> Node:
        if self.at("punct", "("):
            opening = self.advance()
            self.enter()
            node = self.parse_or()
            self.depth -= 1
            if not self.at("punct", ")"):
                raise self.error(
                    f"'(' at {where(self.text, opening.position)} is never closed; "
                    f"expected ')' at HERE, found {self.found()}"
                )
            self.advance()
            return node
        if self.at("keyword", "exists"):
            return self.parse_exists()
        return self.parse_comparison()

    def parse_exists(self) -> Node:
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
        return Exists(Name(name.value, name.position))

    def parse_comparison(self) -> Node:
        left = self.parse_operand()
        if self.at("op"):
            op = self.advance()
            right = self.parse_operand()
            if isinstance(left, Literal) and isinstance(right, Literal):
                raise self.error(_constant_message(left, op.value, right, self.text), op)
            return Compare(left, op.value, right)
        negated = self.at("keyword", "not") and self.tokens[self.index + 1].value == "in"
        if negated:
            self.advance()
        if self.at("keyword", "in"):
            return self.parse_in(left, negated)
        if isinstance(left, Name):
            return Truthy(left)
        if isinstance(left.value, bool):
            return Constant(left.value)
        raise self.error(
            f"{_literal_text(left.value)} at HERE is not a condition on its own; "
            "compare it with a value, e.g. temp >= 37.5",
            self.tokens[self.index - 1],
        )

    def parse_in(self, left: Operand, negated: bool) -> Node:
        keyword = self.advance()
        if not isinstance(left, Name):
            raise self.error(
                f"the left side of 'in' at HERE must be a value name, not {left}", keyword
            )
        if not self.at("punct", "["):
            raise self.error(
                f"expected '[' after 'in' at HERE, found {self.found()}; "
                'e.g. station in ["S1", "S2"]'
            )
        self.advance()
        items: list[Literal] = []
        while not self.at("punct", "]"):
            item = self.parse_operand()
            if isinstance(item, Name):
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
        return In(left, tuple(items), negated)

    def parse_operand(self) -> Operand:
        token = self.token
        if token.kind == "name":
            self.advance()
            return Name(token.value, token.position)
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value, token.position)
        if token.kind == "keyword" and token.value in ("true", "false"):
            self.advance()
            return Literal(token.value == "true", token.position)
        if token.kind == "punct" and token.value == "-":
            self.advance()
            if not self.at("number"):
                raise self.error(f"expected a number after '-' at HERE, found {self.found()}")
            number = self.advance()
            return Literal(-number.value, token.position)
        if token.kind == "keyword" and token.value in ("null", "none"):
            raise self.error(
                f"'{token.text}' at HERE is not a value; a missing or null value never matches a "
                "comparison: test it with exists(name) or not exists(name)"
            )
        raise self.error(
            f"expected a value name, number, text or true/false at HERE, found {self.found()}"
        )


def _flatten(operands: list[Node], kind: type[And] | type[Or]) -> tuple[Node, ...]:
    flat: list[Node] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, kind) else (operand,))
    return tuple(flat)


def _constant_message(left: Literal, op: str, right: Literal, text: str) -> str:
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


def parse_tree(text: str) -> Node:
    """The syntax tree of a condition as written in rules.toml; raise `ConditionError` saying where and why."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(
            f"the condition is too long ({len(text)} characters, at most {MAX_LENGTH})",
            MAX_LENGTH,
            text,
        )
    return Parser(text).parse()
