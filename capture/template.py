"""Filename templates: parse `{line}/{date}/{rule}_{camera}_{seq}.jpg` once, render safe relative paths.

The template's own `/` separate folders; a rendered value never does. Every value
is sanitized as it is rendered and every path component is finished into a
valid, visible file name on ext4, FAT/exFAT USB sticks and SMB shares (the rules:
`capture.sanitize`). Nothing a trigger sends can make a path leave the storage root.

The work is split in three: `capture.template_parse` reads the template (on
`string.Formatter().parse`) and reports mistakes with their column,
`capture.template_render` turns each field's value into text and fits a
component into its room, `capture.sanitize` makes text a file name. This
module joins them: a name that would be too long is shortened in its inserted
values, never in the template's own text (see `capture.template_render`), and
the file name keeps room for the storage's `_2`...`_9999` so numbering never
cuts it either.

Measured with `timeit` (best of 9) on Python 3.11, a shared 2-vCPU EPYC VM where
`sum(range(100))` takes 1.4 us (a current laptop: about 0.5 us, a Raspberry Pi 4:
about 3 us): the default template renders in 23.7 us, of which 4.9 us is building
the PurePosixPath; `{date:%Y/%m/%d}/{rule}_{temp:.1f}_{seq:03d}.jpg` in 29 us;
hostile ASCII values (`../`, NUL, 300 characters, CON) in 34 us; non-ASCII values
(Cyrillic, emoji, a right-to-left override) in 37 us. Scaled by that reference, a
laptop renders the default template in about 9 us, a Pi 4 in about 50 us: far
below the 100 ms or more a camera takes for the frame being named.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from pathlib import PurePosixPath
from types import MappingProxyType

from capture.events import Value
from capture.sanitize import (
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    byte_length,
    finish,
    storage_reserved,
    truncate,
)
from capture.template_parse import (
    MAX_COMPONENTS,
    Parts,
    TemplateError,
    parse_components,
    where,
)
from capture.template_render import MISSING, TIME_FIELDS, Component, Field

__all__ = [
    "BUILTIN_FIELDS",
    "MAX_COMPONENT_BYTES",
    "MAX_PATH_BYTES",
    "MISSING",
    "TIME_FIELDS",
    "Template",
    "TemplateError",
    "builtin_fields_table",
    "parse_template",
    "template_fields",
    "with_suffix_counter",
]

#: Room a file name keeps for the storage's `_2`... `_9999` (capture.storage tries below 10,000).
COUNTER_ROOM = len("_9999")

#: Every field a template can use besides the trigger's own values, with what it holds.
BUILTIN_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "rule": "Name of the rule that fired.",
        "trigger": "Name of the trigger that fired the rule.",
        "camera": "Name of the camera that took the picture.",
        "line": "Production line of the camera ([cameras.X].line, else [service].line).",
        "site": "Site name from [service].site.",
        "vendor": "Camera vendor, e.g. hikvision.",
        "channel": "Camera or NVR channel number.",
        "seq": "Frame number within the burst, from 1; use {seq:02d} for 01, 02...",
        "burst": "Number of frames in the burst (or of frames_ms).",
        "offset_ms": "When the frame is meant to show, in ms after the trigger (negative: before), "
        "from frames_ms or delay_ms + the burst's interval; e.g. {offset_ms:+d} for -500, +0, +200.",
        "event_id": "The event's id, as in the journal and the MQTT event message.",
        "date": "Date of the event in [service].timezone; default format %Y-%m-%d, e.g. {date:%Y%m%d}.",
        "time": "Time of the event; default format %H%M%S, e.g. {time:%H%M%S_%f} for microseconds.",
        "datetime": "Date and time of the event; default format %Y%m%d_%H%M%S.",
    }
)


class Template:
    """A parsed filename template; `render` gives a safe relative path for one frame.

    Build one with `parse_template`.
    """

    __slots__ = ("_fields", "_folders", "_stem", "_stem_limit", "_suffix", "fields", "source")

    def __init__(
        self,
        source: str,
        folders: list[Parts],
        stem: Parts,
        suffix: str,
    ) -> None:
        self.source = source
        self._folders = tuple(Component(parts) for parts in folders)
        self._stem = Component(stem)
        self._suffix = suffix
        self._stem_limit = MAX_COMPONENT_BYTES - len(suffix) - COUNTER_ROOM
        self._fields = tuple(
            part for parts in [*folders, stem] for part, _ in parts if isinstance(part, Field)
        )
        #: Every field name the template uses, built-in or trigger value.
        self.fields: frozenset[str] = frozenset(field.name for field in self._fields)

    @property
    def value_fields(self) -> frozenset[str]:
        """The fields that must come from the trigger's values (not built-in)."""
        return self.fields - BUILTIN_FIELDS.keys()

    def check_fields(self, available: Iterable[str]) -> list[TemplateError]:
        """One error per use of a field that is neither built-in nor in `available` values."""
        known = sorted(set(available) | BUILTIN_FIELDS.keys())
        errors = []
        for field in self._fields:
            if field.name in known:
                continue
            message = f"unknown field '{{{field.name}}}' at {where(self.source, field.position)}"
            close = difflib.get_close_matches(field.name, known, n=1)
            message += (
                f" (did you mean '{{{close[0]}}}'?)"
                if close
                else ("; use a built-in field or a value the triggers provide")
            )
            errors.append(TemplateError(message, field.position, self.source))
        return errors

    def render(self, fields: Mapping[str, object]) -> PurePosixPath:
        """The relative path for these field values; always safe to join under the storage root.

        Missing fields render as `unknown`; `capture.sanitize` has the sanitizing rules.
        """
        folders = [finish(folder.fitted(fields, MAX_COMPONENT_BYTES)) for folder in self._folders]
        stem = finish(self._stem.fitted(fields, self._stem_limit), self._stem_limit)
        if (sum(map(len, folders)) + len(stem)) * 4 > _QUICK_PATH_LIMIT:
            folders, stem = self._shorten(fields, folders, stem)
        # A value naming what the storage keeps at its root (a station called "latest"):
        # renamed like `CON`, so the picture is kept, not refused as an unsafe path.
        if folders and storage_reserved(folders[0]):
            folders[0] = finish("_" + folders[0])
        elif not folders and storage_reserved(stem + self._suffix):
            stem = finish("_" + stem, self._stem_limit)
        return PurePosixPath(*folders, stem + self._suffix)

    def _shorten(
        self, fields: Mapping[str, object], folders: list[str], stem: str
    ) -> tuple[list[str], str]:
        """Shorten the longest components (their values) until the path fits in MAX_PATH_BYTES."""
        components = [*self._folders, self._stem]
        names = [*folders, stem]
        sizes = [byte_length(name) for name in names]
        # Separators and the suffix (at most 5 bytes) count too.
        budget = MAX_PATH_BYTES - len(names) - 5
        while sum(sizes) > budget:
            longest = max(range(len(names)), key=sizes.__getitem__)
            if sizes[longest] <= 16:
                break  # unreachable with MAX_COMPONENTS * 17 < MAX_PATH_BYTES; never loop forever
            target = max(sizes[longest] - (sum(sizes) - budget), 16)
            limit = min(target, self._stem_limit) if longest == len(names) - 1 else target
            names[longest] = finish(components[longest].fitted(fields, limit), limit)
            sizes[longest] = byte_length(names[longest])
        return names[:-1], names[-1]

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and self.source == other.source

    def __hash__(self) -> int:
        return hash(self.source)


# Below this many characters (4 bytes each at most) a path needs no exact byte count.
_QUICK_PATH_LIMIT = MAX_PATH_BYTES - MAX_COMPONENTS - 5


def parse_template(text: str) -> Template:
    """Parse a filename template; raise `TemplateError` saying where and what to write instead."""
    folders, stem, suffix = parse_components(text)
    return Template(text, folders, stem, suffix)


def with_suffix_counter(path: PurePosixPath, n: int) -> PurePosixPath:
    """The `n`th candidate name for `path` when it exists: 1 is `path`, 2 is `x_2.jpg`, ...

    The storage layer never overwrites: it tries n = 1, 2, 3... The name stays
    within MAX_COMPONENT_BYTES by shortening the stem, never the extension.
    """
    if n < 1:
        raise ValueError(f"n must be 1 or more, not {n}")
    if n == 1:
        return path
    counter = f"_{n}"
    limit = MAX_COMPONENT_BYTES - byte_length(path.suffix) - len(counter)
    stem = truncate(path.stem, limit)
    return path.with_name(f"{stem}{counter}{path.suffix}")


def template_fields(
    *,
    rule: str,
    trigger: str,
    camera: str,
    line: str,
    site: str,
    vendor: str,
    channel: int,
    seq: int,
    burst: int,
    event_id: str,
    when: datetime,
    tz: tzinfo,
    values: Mapping[str, Value] | None = None,
    offset_ms: int = 0,
) -> dict[str, object]:
    """The field mapping `Template.render` expects for one frame.

    `when` is the event's wall time; it is shown in `tz` ([service].timezone).
    Trigger values come first and built-ins override them, so a trigger value
    named like a built-in (a file trigger's raw `line`) never renames a folder.
    """
    local = when.astimezone(tz)
    return {
        **(values or {}),
        "rule": rule,
        "trigger": trigger,
        "camera": camera,
        "line": line,
        "site": site,
        "vendor": vendor,
        "channel": channel,
        "seq": seq,
        "burst": burst,
        "offset_ms": offset_ms,
        "event_id": event_id,
        "date": local,
        "time": local,
        "datetime": local,
    }


def builtin_fields_table() -> str:
    """BUILTIN_FIELDS as the Markdown table docs/rules-language.md carries (a test keeps them equal)."""
    rows = ["| Field | What it holds |", "|---|---|"]
    rows += [f"| `{{{name}}}` | {text} |" for name, text in BUILTIN_FIELDS.items()]
    return "\n".join(rows)
