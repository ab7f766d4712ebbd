"""Parsing a filename template: `string.Formatter` finds the fields, this module checks them and says where.

`string.Formatter().parse` splits `{line}/{date}/{rule}_{temp:.1f}.jpg` into
literal text and `{field:spec}` fields, `{{`/`}}` included, exactly as Python's
own `str.format` reads it. It says nothing about where a piece was, and raises
a bare ValueError for a broken brace, so the parser walks the source beside it
to give every message its column, and applies what Python's format language
does not know: folders (the template's own `/`), names a USB stick or a
Windows share refuses, no conversions, bounded widths, strftime codes for the
time fields, and a `.jpg` or `.jpeg` at the end.
"""

from __future__ import annotations

import re
import string
import unicodedata

from capture.errors import CaptureError
from capture.sanitize import MAX_COMPONENT_BYTES, UNSAFE_CATEGORIES, byte_length, is_reserved
from capture.template_render import TIME_FIELDS, Field

__all__ = [
    "JPEG_SUFFIXES",
    "MAX_COMPONENTS",
    "MAX_TEMPLATE_LENGTH",
    "Parts",
    "TemplateError",
    "parse_components",
    "where",
]

#: Longest template accepted, in characters.
MAX_TEMPLATE_LENGTH = 1024
#: Most folder levels plus the file name a template may have.
MAX_COMPONENTS = 16
JPEG_SUFFIXES = (".jpg", ".jpeg")

#: One path component: literal text and fields, each with its 0-based position in the template.
Parts = list[tuple[str | Field, int]]

_FORMATTER = string.Formatter()
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
# Python's format-spec mini-language, so widths and precisions can be bounded.
_FORMAT_SPEC = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?z?#?0?(?P<width>\d+)?[,_]?"
    r"(?:\.(?P<precision>\d+))?(?P<type>[bcdeEfFgGnosxX%])?",
    re.DOTALL,
)
_BRACE = re.compile(r"[{}]")
_STRFTIME = re.compile(r"%(.?)", re.DOTALL)
_STRFTIME_CODES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")


class TemplateError(CaptureError, ValueError):
    """A template that does not parse or would not give a safe JPEG file name.

    `position` is the 0-based offset in `text`; the message counts columns from 1.
    """

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text


def where(text: str, position: int) -> str:
    """A position as a person counts it."""
    return f"column {position + 1}"


class _Parser:
    """Splits a template into components of literal text and fields, checking each."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.components: list[Parts] = [[]]
        self.component_starts: list[int] = [0]

    def error(self, message: str, position: int) -> TemplateError:
        return TemplateError(
            message.replace("HERE", where(self.text, position)), position, self.text
        )

    def parse(self) -> list[Parts]:
        pieces = iter(_FORMATTER.parse(self.text))
        position = 0  # where in the source the piece Formatter reads next begins
        while True:
            try:
                piece = next(pieces, None)
            except ValueError:
                # Formatter says what, not where: find the brace it stopped at.
                raise self.brace_error(position) from None
            if piece is None:
                return self.components
            literal, name, spec, conversion = piece
            position = self.literal_text(literal, position)
            if name is not None:
                position = self.field(position, name, spec or "", conversion)

    def literal_text(self, literal: str, position: int) -> int:
        """Add Formatter's literal text, which started at `position`; return where it ended."""
        for char in literal:
            if char in "{}":  # written doubled, read as one
                self.literal(char, position)
                position += 2
                continue
            if char == "/":
                self.separator(position)
            else:
                self.check_literal_char(char, position)
                self.literal(char, position)
            position += 1
        return position

    def brace_error(self, position: int) -> TemplateError:
        """The error for the first bad brace from `position` (literal text before it checked first)."""
        text = self.text
        while position < len(text):
            char = text[position]
            if text.startswith(("{{", "}}"), position):
                position += 2
            elif char == "}":
                return self.error("single '}' at HERE; write '}}' for a literal brace", position)
            elif char == "{":
                return self.unclosed_or_bad_name(position)
            else:
                self.literal_text(char, position)
                position += 1
        # Not reached: Formatter raises only at a brace. Still an error, never a silent pass.
        return self.error("'{' at HERE is never closed", position)

    def unclosed_or_bad_name(self, start: int) -> TemplateError:
        """For a field Formatter refused or read across a brace: unclosed, or its name is bad."""
        close = _BRACE.search(self.text, start + 1)
        if close is not None and close.group() == "}":
            body = self.text[start + 1 : close.start()]
            self.check_name(body.partition(":")[0], body, start)
        return self.error(
            "'{' at HERE is never closed; add '}' (or write '{{' for a literal brace)", start
        )

    def literal(self, text: str, position: int) -> None:
        parts = self.components[-1]
        if parts and isinstance(parts[-1][0], str):
            parts[-1] = (parts[-1][0] + text, parts[-1][1])
        else:
            parts.append((text, position))

    def separator(self, position: int) -> None:
        if position == 0:
            raise self.error(
                "the template starts with '/', but it is relative to [storage].root; "
                "remove the leading '/'",
                0,
            )
        self.components.append([])
        self.component_starts.append(position + 1)

    def check_literal_char(self, char: str, position: int) -> None:
        if char == "\\":
            raise self.error("'\\' at HERE: use '/' to separate folders", position)
        if char in '<>:"|?*' or unicodedata.category(char) in UNSAFE_CATEGORIES:
            shown = char if char.isprintable() else repr(char)[1:-1]
            raise self.error(
                f"'{shown}' at HERE is not allowed in file names on USB sticks and Windows shares",
                position,
            )

    def field(self, start: int, name: str, spec: str, conversion: str | None) -> int:
        """Add the field Formatter read at `start` (its '{'); return where it ended."""
        # Formatter drops the '!r' and the ':' of an empty format; the source still has them.
        cursor = start + 1 + len(name) + (2 if conversion is not None else 0)
        colon = self.text.startswith(":", cursor)
        end = cursor + (1 + len(spec) if colon else 0)
        body = self.text[start + 1 : end]
        if "[" in name or "{" in body or "}" in body or not self.text.startswith("}", end):
            # Formatter reads more than our fields hold: an index (`{a[0]}`, where ':' may
            # stand), a nested `{x}` in the format, a conversion it reads as none ('!\0').
            raise self.unclosed_or_bad_name(start)
        shown_name = body if conversion is not None else name
        name = self.check_name(shown_name, body, start)
        if colon and not spec:
            raise self.error(
                f"empty format after ':' in '{{{body}}}' at HERE; remove the ':'", start
            )
        spec_start = start + 2 + len(shown_name)
        if name in TIME_FIELDS:
            self.time_fields(name, spec or TIME_FIELDS[name], spec_start)
        else:
            self.check_format_spec(name, spec, spec_start)
            self.components[-1].append((Field(name, spec, start), start))
        return end + 1

    def check_name(self, written: str, body: str, start: int) -> str:
        """The field's name, stripped; raise if it is empty, has a conversion or is no name."""
        name_start = start + 1 + (len(written) - len(written.lstrip()))
        name = written.strip()
        if not name:
            raise self.error(
                "empty field '{}' at HERE; write a field name such as {rule}, or '{{' for a brace",
                start,
            )
        if "!" in name:
            raise self.error(
                f"'{{{body}}}' at HERE: conversions such as '!r' are not supported", start
            )
        if not _NAME.fullmatch(name):
            raise self.error(
                f"'{name}' at HERE is not a field name; use letters, digits, '_' and '.' "
                "(e.g. {part.id})",
                name_start,
            )
        return name

    def time_fields(self, name: str, spec: str, spec_start: int) -> None:
        for match in _STRFTIME.finditer(spec):
            if match.group(1) not in _STRFTIME_CODES:
                raise self.error(
                    f"unknown time code '{match.group()}' at HERE; use strftime codes such as "
                    "%Y %m %d %H %M %S %f",
                    spec_start + match.start(),
                )
        # `{date:%Y/%m}` is the template's own folder structure: split it into fields.
        offset = 0
        for index, piece in enumerate(spec.split("/")):
            if index:
                self.separator(spec_start + offset - 1)
            if not piece:
                raise self.error(
                    f"empty folder name in the format of {{{name}}} at HERE", spec_start + offset
                )
            self.components[-1].append(
                (Field(name, piece, spec_start + offset), spec_start + offset)
            )
            offset += len(piece) + 1

    def check_format_spec(self, name: str, spec: str, position: int) -> None:
        if not spec:
            return
        match = _FORMAT_SPEC.fullmatch(spec)
        if match is None:
            raise self.bad_format(name, spec, position)
        # Bounded before anything is formatted: a width of 10**10 would take gigabytes.
        if (
            len(match.group("width") or "") > 3
            or int(match.group("width") or 0) > MAX_COMPONENT_BYTES
        ):
            raise self.error(
                f"width in '{spec}' at HERE is larger than {MAX_COMPONENT_BYTES}", position
            )
        if len(match.group("precision") or "") > 2 or int(match.group("precision") or 0) > 20:
            raise self.error(f"precision in '{spec}' at HERE is larger than 20", position)
        if not any(_formats(sample, spec) for sample in (1, 1.5, "x")):
            raise self.bad_format(name, spec, position)

    def bad_format(self, name: str, spec: str, position: int) -> TemplateError:
        return self.error(
            f"bad format '{spec}' for {{{name}}} at HERE; use a number format such as .1f or 04d",
            position,
        )


def _formats(sample: object, spec: str) -> bool:
    try:
        format(sample, spec)
    except (ValueError, TypeError):
        return False
    return True


def _check_components(parser: _Parser, components: list[Parts]) -> None:
    if len(components) > MAX_COMPONENTS:
        raise parser.error(
            f"too many folder levels (at most {MAX_COMPONENTS - 1}) at HERE",
            parser.component_starts[MAX_COMPONENTS],
        )
    for index, parts in enumerate(components):
        start = parser.component_starts[index]
        final = index == len(components) - 1
        if not parts:
            what = "file name after the last '/'" if final else "folder name ('//')"
            raise parser.error(f"empty {what} at HERE", start)
        _check_literal_edges(parser, parts, final)
        literal = "".join(part for part, _ in parts if isinstance(part, str))
        if len(parts) == 1 and literal and byte_length(literal) > MAX_COMPONENT_BYTES:
            raise parser.error(f"name at HERE is longer than {MAX_COMPONENT_BYTES} bytes", start)
        if len(parts) == 1 and isinstance(parts[0][0], str) and is_reserved(literal):
            raise parser.error(f"'{literal}' at HERE is a reserved name on Windows shares", start)


def _check_literal_edges(parser: _Parser, parts: Parts, final: bool) -> None:
    first, first_position = parts[0]
    if isinstance(first, str):
        if len(parts) == 1 and first in (".", ".."):
            raise parser.error(
                f"'{first}' at HERE is not allowed: snapshots stay under the storage root",
                first_position,
            )
        if first[:1] in (" ", "."):
            raise parser.error(
                "a name may not start with '.' (hidden file) or a space at HERE", first_position
            )
    last, last_position = parts[-1]
    if not final and isinstance(last, str) and last[-1:] in (" ", "."):
        raise parser.error(
            "a folder name may not end with '.' or a space at HERE",
            last_position + len(last) - 1,
        )


def _split_suffix(parser: _Parser, parts: Parts) -> tuple[Parts, str]:
    last, position = parts[-1]
    suffix = (
        next((last[-len(s) :] for s in JPEG_SUFFIXES if last.lower().endswith(s)), None)
        if isinstance(last, str)
        else None
    )
    if suffix is None:
        raise parser.error(
            "a template must end in '.jpg' or '.jpeg' (snapshots are JPEG files), "
            "e.g. '{rule}_{camera}_{seq}.jpg'",
            len(parser.text),
        )
    assert isinstance(last, str)  # a suffix was found in it
    stem = [*parts[:-1]]
    if len(last) > len(suffix):
        stem.append((last[: -len(suffix)], position))
    if not stem:
        raise parser.error(f"the file name needs a name before '{suffix}' at HERE", position)
    return stem, suffix


def parse_components(text: str) -> tuple[list[Parts], Parts, str]:
    """The folders, the file name's stem and its suffix of a template; raise `TemplateError` where it is wrong."""
    if not text:
        raise TemplateError("the filename template is empty", 0, text)
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(
            f"the filename template is too long ({len(text)} characters, at most "
            f"{MAX_TEMPLATE_LENGTH})",
            MAX_TEMPLATE_LENGTH,
            text,
        )
    parser = _Parser(text)
    components = parser.parse()
    _check_components(parser, components)
    stem, suffix = _split_suffix(parser, components[-1])
    return components[:-1], stem, suffix
