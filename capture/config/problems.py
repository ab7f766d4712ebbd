"""Problems found in a rule file, reported the way a compiler reports them.

Every check (TOML syntax, schema, secrets, cross-references) produces
`Problem`s instead of raising at the first one, so a technician sees every
mistake in one run of `capture check`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from capture.errors import CaptureError

Severity = Literal["error", "warning"]


def format_path(path: Sequence[str | int]) -> str:
    """`('rules', 2, 'cameras')` -> `rules[2].cameras`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a close candidate, else empty."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in a rule file, with where it is and what to do."""

    source: str
    line: int | None
    path: str
    message: str
    severity: Severity = "error"
    column: int | None = None

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        label = "warning: " if self.severity == "warning" else ""
        subject = f"{self.path}: " if self.path else ""
        return f"{where}: {label}{subject}{self.message}"


class ConfigError(CaptureError, ValueError):
    """A rule file that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @property
    def errors(self) -> list[Problem]:
        """Only the problems that make the file unusable."""
        return [problem for problem in self.problems if problem.severity == "error"]


class RuleFileMissing(ConfigError):
    """No rule file where one was looked for: not a mistake in a file, nothing to fix in one."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """Parts of a rule file that failed validation and were left out of the cross-checks.

    The rest is still cross-checked, so one run shows every mistake; these
    names keep the checks from blaming what was kept for what was left out:
    a rule naming a camera whose own section is broken does not name an
    unknown camera. `rules` holds positions in the file's `[[rules]]` list.
    """

    sections: frozenset[str] = frozenset()
    cameras: frozenset[str] = frozenset()
    triggers: frozenset[str] = frozenset()
    rules: frozenset[int] = frozenset()

    def camera_left_out(self, name: str) -> bool:
        """Whether a camera of this name may exist, though it failed validation."""
        return "cameras" in self.sections or name in self.cameras

    def trigger_left_out(self, name: str) -> bool:
        """Whether a trigger of this name may exist, though it failed validation."""
        return "triggers" in self.sections or name in self.triggers

    @property
    def lines_unknown(self) -> bool:
        """Whether a camera's production line may be unknown (its section or [service] failed)."""
        return bool(self.cameras) or not self.sections.isdisjoint({"cameras", "service"})

    @property
    def rules_incomplete(self) -> bool:
        """Whether some `[[rules]]` were left out."""
        return bool(self.rules) or "rules" in self.sections

    def rule_positions(self, kept: int) -> list[int]:
        """Positions in the file of the `kept` rules that were validated, in order."""
        return [index for index in range(kept + len(self.rules)) if index not in self.rules]
