"""Cut sensor output into lines and lines into values, for the file and serial triggers.

Sensors write whatever they like: CR, LF or CRLF line ends, garbage without
any line end, a header line among readings. Lines are bounded in length, and a
line the configured parser cannot read is noise: the trigger counts it and
fires no event.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Mapping

from capture.config.schema import LineParser
from capture.events import Value
from capture.triggers.values import PayloadFormatError, coerce, flatten, parse_json

MAX_LINE_BYTES = 64 * 1024
"""Longest line kept; longer ones (a device spewing without line ends) are dropped."""

_LINE_END = re.compile(rb"[\r\n]")
# The last number in a line: "T=36.9C" -> 36.9, "2026-11-25 Temp 37,5" -> 37.5.
# The look-behind keeps "2026-11-25" from reading as minus 25.
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:[.,]\d+)?")


class LineSplitter:
    """Cuts a byte stream into complete lines; a partial line waits for its end.

    CR, LF and CRLF all end a line (barcode scanners often send CR only);
    empty lines are skipped. Memory is bounded by `max_bytes`: an overlong
    line is dropped up to its end and counted in the `feed` result.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buffer = b""
        self._discarding = False

    def feed(self, data: bytes) -> tuple[list[bytes], int]:
        """Add `data`; return the lines it completed and how many overlong lines were dropped."""
        parts = _LINE_END.split(self._buffer + data)
        self._buffer = parts.pop()
        lines: list[bytes] = []
        dropped = 0
        for part in parts:
            if self._discarding:
                self._discarding = False
            elif len(part) > self.max_bytes:
                dropped += 1
            elif part.strip():
                lines.append(part)
        if len(self._buffer) > self.max_bytes:
            dropped += 0 if self._discarding else 1
            self._discarding = True
            self._buffer = b""
        return lines, dropped

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line waiting for its end."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget the partial line, e.g. after the file was truncated."""
        self._buffer = b""
        self._discarding = False


class ValueParser:
    """Turns one line (or a whole file in replace mode) into event values.

    The result always holds `line`, the text stripped of surrounding white
    space, plus what the configured parser found. Raises `PayloadFormatError`
    when the text does not match: the caller counts it and fires nothing.
    """

    def __init__(self, config: LineParser) -> None:
        self.config = config
        codecs.lookup(config.encoding)  # an unknown encoding fails at start, not per line
        self._pattern = re.compile(config.pattern) if config.pattern else None
        self._parse = {
            "number": self._number,
            "regex": self._regex,
            "csv": self._csv,
            "json": self._json,
            "text": self._text,
        }[config.parser]

    def decode(self, raw: bytes) -> str:
        """Decode raw bytes with the configured encoding."""
        try:
            return raw.decode(self.config.encoding)
        except UnicodeDecodeError as exc:
            raise PayloadFormatError(
                f"not valid {self.config.encoding} at byte {exc.start}"
            ) from exc

    def parse(self, text: str) -> dict[str, Value]:
        """The values of `text`, with `line` set to the stripped text."""
        stripped = text.strip()
        if not stripped:
            raise PayloadFormatError("empty")
        values = self._parse(stripped)
        values["line"] = stripped
        return values

    def parse_bytes(self, raw: bytes) -> dict[str, Value]:
        """Decode and parse in one step."""
        return self.parse(self.decode(raw))

    def _number(self, text: str) -> dict[str, Value]:
        matches = _NUMBER.findall(text)
        if not matches:
            raise PayloadFormatError(f"no number in {_preview(text)}")
        last = matches[-1].replace(",", ".")
        number: Value = float(last) if "." in last else int(last)
        return {self.config.value_name: number}

    def _regex(self, text: str) -> dict[str, Value]:
        assert self._pattern is not None  # the schema requires a pattern for this parser
        match = self._pattern.search(text)
        if match is None:
            raise PayloadFormatError(f"pattern does not match {_preview(text)}")
        return {
            name: None if group is None else coerce(group)
            for name, group in match.groupdict().items()
        }

    def _csv(self, text: str) -> dict[str, Value]:
        last_line = text.splitlines()[-1]
        row = next(csv.reader([last_line], delimiter=self.config.delimiter))
        columns = self.config.columns
        needed = max(index for index, name in enumerate(columns) if name) + 1
        if len(row) < needed:
            raise PayloadFormatError(
                f"{len(row)} columns, expected at least {needed}: {_preview(last_line)}"
            )
        return {
            name: coerce(cell.strip()) for name, cell in zip(columns, row, strict=False) if name
        }

    def _json(self, text: str) -> dict[str, Value]:
        return flatten(parse_json(text), self.config.value_name)

    def _text(self, text: str) -> dict[str, Value]:
        return {self.config.value_name: text}


def _preview(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def merge(parsed: Mapping[str, Value], own: Mapping[str, Value]) -> dict[str, Value]:
    """Parsed values overlaid with the trigger's own (`file`, `port`), which always win."""
    return {**parsed, **own}
