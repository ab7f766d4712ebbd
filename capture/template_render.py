"""Rendering a parsed filename template: each field's value as text, each path component fitted.

Rendering runs for every frame, so a template is compiled to one closure per
path component, common strftime codes read datetime attributes instead of
calling strftime, and clean ASCII values are checked by one regex search and
not copied. Values are cleaned here (`capture.sanitize.clean`); the template
finishes each component into a name.

A name that would be too long is shortened in its inserted values, never in
the template's own text: each value longer than its fair share of the room
is cut and ends in `~` and 8 hex digits of its SHA-256, so distinct values
stay distinct and `_{camera}_{seq}.jpg` always survives.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from capture.sanitize import byte_length, clean, truncate

__all__ = [
    "MISSING",
    "TIME_FIELDS",
    "Component",
    "Field",
    "Part",
    "time_formatter",
]

#: What a field renders as when the event has no such value (or its value is null).
MISSING = "unknown"

#: Time fields and their default strftime formats.
TIME_FIELDS: Mapping[str, str] = MappingProxyType(
    {"date": "%Y-%m-%d", "time": "%H%M%S", "datetime": "%Y%m%d_%H%M%S"}
)

_NUMBER_TYPES = frozenset("bcdeEfFgGnoxX%")
_INTEGER_TYPES = frozenset("bcdoxXn")
# A number written as text, a decimal comma included (as the triggers read them).
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d+[.,]?\d*|[.,]\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
#: `~` and the hex digits of a shortened value's hash.
_DIGEST_LENGTH = 8
_MARK_LENGTH = 1 + _DIGEST_LENGTH
#: Characters of a value its hash covers: enough to tell payloads apart, bounded in cost.
_HASHED_CHARACTERS = 65_536


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime(TIME_FIELDS["datetime"])
    return str(value)


def _as_number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        text = value.strip()
        if not text.lstrip("+-").isdigit():
            return float(text.replace(",", "."))
        try:
            return int(text)
        except ValueError:  # more digits than Python converts (4300): render the text
            return None
    return None


#: Renders one piece of a component from a frame's field values.
Part = Callable[[Mapping[str, object]], str]


def _literal_part(text: str) -> Part:
    return lambda fields: text


def _text_part(name: str) -> Part:
    def render(fields: Mapping[str, object]) -> str:
        value = fields.get(name)
        kind = type(value)
        if kind is str:
            return clean(value)  # type: ignore[arg-type]  # `type(v) is` (exact, faster than isinstance on this per-frame path) does not narrow for mypy
        if kind is int or kind is float:
            return str(value)  # digits, '-', '.', 'e', 'inf', 'nan': nothing to clean
        return MISSING if value is None else clean(_as_text(value))

    return render


_TWO_DIGITS = tuple(f"{number:02d}" for number in range(100)).__getitem__
# strftime (and isoformat) cost microseconds per call on an aware datetime; the common
# codes read plain attributes instead and give the same text several times faster.
_FAST_TIME_CODES: Mapping[str, tuple[str, Callable[[int], str]]] = {
    "Y": ("year", str),
    "y": ("year", lambda year: _TWO_DIGITS(year % 100)),
    "m": ("month", _TWO_DIGITS),
    "d": ("day", _TWO_DIGITS),
    "H": ("hour", _TWO_DIGITS),
    "M": ("minute", _TWO_DIGITS),
    "S": ("second", _TWO_DIGITS),
    "f": ("microsecond", "{:06d}".format),
}


def time_formatter(time_format: str) -> Callable[[datetime], str]:
    """A function equal to `moment.strftime(time_format)` for years 1000-9999, but faster."""
    skeleton: list[str] = []
    codes: list[tuple[str, Callable[[int], str]]] = []
    for index, piece in enumerate(re.split(r"%(.)", time_format, flags=re.DOTALL)):
        if index % 2 == 0:
            skeleton.append(piece.replace("{", "{{").replace("}", "}}"))
        elif piece == "%":
            skeleton.append("%")
        elif piece in _FAST_TIME_CODES:
            skeleton.append("{}")
            codes.append(_FAST_TIME_CODES[piece])
        else:
            return lambda moment: moment.strftime(time_format)
    fill = "".join(skeleton).format
    if not codes:
        constant = fill()
        return lambda moment: constant
    read = operator.attrgetter(*(attribute for attribute, _ in codes))
    converters = tuple(convert for _, convert in codes)
    if len(codes) == 1:
        only = converters[0]
        return lambda moment: fill(only(read(moment)))  # type: ignore[arg-type]  # one attribute: attrgetter gives the value, not a tuple
    # map() over C-level callables keeps Python frames out of the per-frame path.
    return lambda moment: fill(*map(operator.call, converters, read(moment)))


def _time_part(name: str, time_format: str) -> Part:
    fast = time_formatter(time_format)
    # Only digits come from the fast codes; %x, %c, %Z... and literal text may need cleaning.
    codes = set(re.findall(r"%(.)", time_format, flags=re.DOTALL))
    if codes <= {*_FAST_TIME_CODES, "%"} and clean(time_format) == time_format:
        formatter = fast
    else:

        def formatter(moment: datetime) -> str:
            return clean(fast(moment))

    def render(fields: Mapping[str, object]) -> str:
        value = fields.get(name)
        if type(value) is datetime and value.year >= 1000:
            return formatter(value)
        if value is None:
            return MISSING
        if isinstance(value, datetime):
            return clean(value.strftime(time_format))
        return clean(_as_text(value))

    return render


def _formatted_part(name: str, spec: str) -> Part:
    numeric = spec[-1:] in _NUMBER_TYPES
    integral = spec[-1:] in _INTEGER_TYPES

    def render(fields: Mapping[str, object]) -> str:
        value = fields.get(name)
        if value is None:
            return MISSING
        subject: object = value
        if isinstance(value, datetime):
            return clean(_as_text(value))
        if numeric or not isinstance(value, str):
            number = _as_number(value)
            if number is None:
                return clean(_as_text(value))  # a number format on text: the text as it is
            if integral and isinstance(number, float) and number.is_integer():
                number = int(number)
            subject = number
        try:
            return clean(format(subject, spec))
        except (ValueError, TypeError, OverflowError):
            return clean(_as_text(value))

    return render


@dataclass(frozen=True, slots=True)
class Field:
    """A `{name:spec}` of the template and where it stands in it (0-based)."""

    name: str
    spec: str
    position: int


class Component:
    """One path component: `render` for every frame, `fitted` for a name that may be too long."""

    __slots__ = ("_fill", "_literal_bytes", "_names", "_renderers", "render")

    def __init__(self, parts: list[tuple[str | Field, int]]) -> None:
        skeleton: list[str] = []
        self._renderers: list[Part] = []
        self._names: list[str] = []
        literal = ""
        for part, _ in parts:
            if isinstance(part, str):
                skeleton.append(part.replace("{", "{{").replace("}", "}}"))
                literal += part
                continue
            skeleton.append("{}")
            self._names.append(part.name)
            if part.name in TIME_FIELDS:
                self._renderers.append(_time_part(part.name, part.spec))
            elif part.spec:
                self._renderers.append(_formatted_part(part.name, part.spec))
            else:
                self._renderers.append(_text_part(part.name))
        self._literal_bytes = byte_length(literal)
        self._fill = "".join(skeleton).format
        renderers, fill = self._renderers, self._fill
        self.render: Part
        if not renderers:
            self.render = _literal_part(literal)
        elif skeleton == ["{}"]:
            self.render = renderers[0]
        else:
            self.render = lambda fields: fill(*[render(fields) for render in renderers])

    def fitted(self, fields: Mapping[str, object], limit: int) -> str:
        """The component in at most `limit` bytes, shortening values only (if it can)."""
        text = self.render(fields)
        if len(text) * 4 <= limit or byte_length(text) <= limit:
            return text
        values = [render(fields) for render in self._renderers]
        budget = limit - self._literal_bytes
        if budget < len(values) * _MARK_LENGTH:
            return text  # the template's own text leaves no room: cut as a last resort
        allowed = _fair_shares([byte_length(value) for value in values], budget)
        return self._fill(
            *[
                value if byte_length(value) <= room else _abbreviate(value, fields.get(name), room)
                for value, name, room in zip(values, self._names, allowed, strict=True)
            ]
        )


def _fair_shares(sizes: list[int], budget: int) -> list[int]:
    """Bytes each value may keep: short values all of theirs, long ones an equal share of the rest."""
    allowed = [0] * len(sizes)
    remaining = budget
    for done, index in enumerate(sorted(range(len(sizes)), key=sizes.__getitem__)):
        allowed[index] = min(sizes[index], remaining // (len(sizes) - done))
        remaining -= allowed[index]
    return allowed


def _abbreviate(text: str, value: object, room: int) -> str:
    """`text` cut to `room` bytes, ending in `~` and a hash of the whole value, so it stays distinct."""
    whole = _as_text(value)[:_HASHED_CHARACTERS] if value is not None else text
    digest = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_LENGTH]
    if room < _MARK_LENGTH:
        return digest[: max(room, 1)]
    return truncate(text, room - _MARK_LENGTH) + "~" + digest
