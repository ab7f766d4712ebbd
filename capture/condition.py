"""Rule conditions: a small, safe expression language, parsed once and compiled to closures.

A technician writes `temp >= 37.5` or `state == "NG" and station in ["S1", "S2"]`
in rules.toml. `capture.condition_grammar` parses that text to a syntax tree and
reports mistakes with their column; this module gives the tree its meaning (the
rules below, checks of the value names against the triggers') and compiles it
to plain closures, so evaluating a condition for each event costs a few
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
from typing import Any

from capture.condition_grammar import (
    And,
    Compare,
    Constant,
    Exists,
    In,
    Literal,
    Name,
    Node,
    Not,
    Or,
    Truthy,
    parse_tree,
)
from capture.condition_tokens import MAX_DEPTH, MAX_LENGTH, ConditionError, where
from capture.events import Value

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Condition",
    "ConditionError",
    "parse_condition",
]

Test = Callable[[Mapping[str, Any]], bool]

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
        if kind is int or (kind is float and not math.isnan(value)):  # type: ignore[arg-type]  # `type(v) is` (exact, faster than isinstance on this per-frame path) does not narrow for mypy
            return native(value, literal)
        if kind is str:
            number = _number(value)  # type: ignore[arg-type]  # as above: kind is str
            if number is not None:
                return native(number, literal)
        return slow(value, literal)

    return against_number


# --------------------------------------------------------------------------- compiling

_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _compile(node: Node) -> Test:
    """The closure that decides `node` for an event's values (see the module doc for the rules)."""
    return _COMPILERS[type(node)](node)


def _compile_constant(node: Constant) -> Test:
    value = node.value
    return lambda values: value


def _compile_truthy(node: Truthy) -> Test:
    name = node.operand.name
    return lambda values: _truthy(values.get(name))


def _compile_exists(node: Exists) -> Test:
    name = node.operand.name
    return lambda values: not _missing(values.get(name))


def _compile_not(node: Not) -> Test:
    test = _compile(node.operand)
    return lambda values: not test(values)


def _compile_junction(node: And | Or) -> Test:
    tests = tuple(_compile(operand) for operand in node.operands)
    combine = all if isinstance(node, And) else any
    return lambda values: combine(test(values) for test in tests)


def _compile_comparison(node: Compare) -> Test:
    left, right, op = node.left, node.right, node.op
    if isinstance(left, Literal):  # keep the value name on the left
        left, right, op = right, left, _MIRRORED[op]
    assert isinstance(left, Name)  # the grammar refuses two constants
    name = left.name
    if isinstance(right, Name):
        other, compare = right.name, _comparer(op)
        return lambda values: compare(values.get(name), values.get(other))
    against = _literal_comparer(op, right.value)
    return lambda values: against(values.get(name))


def _compile_membership(node: In) -> Test:
    name, negated = node.operand.name, node.negated
    items = tuple(item.value for item in node.items)
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


# One entry per node kind of the grammar; a test keeps them in step.
_COMPILERS: dict[type[Node], Callable[[Any], Test]] = {
    Constant: _compile_constant,
    Truthy: _compile_truthy,
    Exists: _compile_exists,
    Compare: _compile_comparison,
    In: _compile_membership,
    Not: _compile_not,
    And: _compile_junction,
    Or: _compile_junction,
}


# --------------------------------------------------------------------------- public


class Condition:
    """A parsed condition: evaluate it on an event's values, print it, list its names.

    Build one with `parse_condition`. Evaluation never raises and never re-parses.
    """

    __slots__ = ("_node", "_test", "names", "source")

    def __init__(self, source: str, node: Node) -> None:
        self.source = source
        self._node = node
        self._test = _compile(node)
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
            message = f"unknown value '{name.name}' at {where(self.source, name.position)}"
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
    return Condition(text, parse_tree(text))
