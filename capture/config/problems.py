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


class ConfigError(ValueError):
    """A rule file that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @property
    def errors(self) -> list[Problem]:
        """Only the problems that make the file unusable."""
        return [problem for problem in self.problems if problem.severity == "error"]
