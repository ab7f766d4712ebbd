"""Maps rule-file keys to their line numbers, so errors point where the typo is.

`tomllib` keeps no positions, and a technician fixing `rules.toml` over SSH
needs `rules.toml:23`, not a pydantic location tuple. This scanner follows
TOML's table headers, arrays of tables and dotted keys closely enough to
locate every key a person writes; values spanning lines (arrays, multi-line
strings) are skipped over, inline tables are located at their key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from capture.config.problems import Problem, Severity, format_path

Path = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> tuple[list[str], int]:
    """Split a dotted, possibly quoted key; return its parts and the index after it."""
    parts: list[str] = []
    index = 0
    while index < len(text):
        while index < len(text) and text[index] in " \t":
            index += 1
        if index >= len(text):
            break
        char = text[index]
        if char in "\"'":
            end = text.find(char, index + 1)
            while char == '"' and end > 0 and text[end - 1] == "\\":
                end = text.find(char, end + 1)
            if end < 0:
                break
            parts.append(text[index + 1 : end])
            index = end + 1
        else:
            match = _BARE_KEY.match(text, index)
            if not match:
                break
            parts.append(match.group())
            index = match.end()
        while index < len(text) and text[index] in " \t":
            index += 1
        if index < len(text) and text[index] == ".":
            index += 1
            continue
        break
    return parts, index


class _ValueScanner:
    """Tracks whether the scanner is inside a multi-line value."""

    def __init__(self) -> None:
        self.depth = 0
        self.multiline: str | None = None

    @property
    def inside(self) -> bool:
        return self.depth > 0 or self.multiline is not None

    def feed(self, text: str) -> None:
        """Consume the value text of one line, updating bracket and string state."""
        index = 0
        while index < len(text):
            if self.multiline:
                end = text.find(self.multiline, index)
                if end < 0:
                    return
                index = end + 3
                self.multiline = None
                continue
            char = text[index]
            if text.startswith(('"""', "'''"), index):
                self.multiline = text[index : index + 3]
                index += 3
            elif char in "\"'":
                index = self._skip_string(text, index, char)
            elif char == "#":
                return
            elif char in "[{":
                self.depth += 1
                index += 1
            elif char in "]}":
                self.depth = max(0, self.depth - 1)
                index += 1
            else:
                index += 1

    @staticmethod
    def _skip_string(text: str, index: int, quote: str) -> int:
        index += 1
        while index < len(text):
            if quote == '"' and text[index] == "\\":
                index += 2
                continue
            if text[index] == quote:
                return index + 1
            index += 1
        return index


class KeyLocator:
    """Line numbers (1-based) of tables and keys in one TOML document."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        self._array_counts: dict[tuple[str, ...], int] = {}
        self._scan(text)

    def _scan(self, text: str) -> None:
        table: Path = ()
        values = _ValueScanner()
        for number, raw in enumerate(text.splitlines(), start=1):
            if values.inside:
                values.feed(raw)
                continue
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[["):
                parts, _ = _split_key(line[2:])
                key = tuple(parts)
                index = self._array_counts.get(key, 0)
                self._array_counts[key] = index + 1
                table = (*key, index)
                self.lines.setdefault(tuple(parts), number)
                self.lines[table] = number
            elif line.startswith("["):
                parts, _ = _split_key(line[1:])
                table = self._resolve_arrays(parts)
                self._first_seen(table, number)
            else:
                parts, end = _split_key(line)
                if parts and end < len(line) and line[end] == "=":
                    self._first_seen((*table, *parts), number)
                    values.feed(line[end + 1 :])

    def _first_seen(self, path: Path, number: int) -> None:
        """`path` and each table it implies (`[camera.gate]` spells `camera` too: a typo of
        `cameras` is reported at that line) are where they first appear."""
        for length in range(1, len(path) + 1):
            self.lines.setdefault(path[:length], number)

    def _resolve_arrays(self, parts: Sequence[str]) -> Path:
        """`[rules.extra]` after `[[rules]]` belongs to the last rule."""
        resolved: list[str | int] = []
        for index, part in enumerate(parts):
            resolved.append(part)
            count = self._array_counts.get(tuple(parts[: index + 1]))
            if count:
                resolved.append(count - 1)
        return tuple(resolved)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of the longest prefix of `path` that the document spells out."""
        for length in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:length]))
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class Where:
    """Where each key of a rule file was written: a line of the file, or a CAPTURE_* variable."""

    source: str
    locator: KeyLocator
    #: (section, option) -> the variable that overrode it.
    from_env: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def problem(
        self,
        path: Path,
        message: str,
        *,
        display: str | None = None,
        severity: Severity = "error",
    ) -> Problem:
        """A problem about the key at `path`, located at its line or its variable."""
        display = format_path(path) if display is None else display
        variable = self.from_env.get((str(path[0]), str(path[1]))) if len(path) >= 2 else None
        if variable:
            return Problem(f"environment {variable}", None, display, message, severity)
        return Problem(self.source, self.locator.line_of(path), display, message, severity)
