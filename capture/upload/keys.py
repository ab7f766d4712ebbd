"""Object keys: `[upload].key` checked when the rule file is read, rendered for each picture."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

#: The fields a key template may use, with what they hold.
KEY_FIELDS: Mapping[str, str] = {
    "site": "[service].site",
    "line": "the camera's production line",
    "camera": "the camera's name",
    "rule": "the rule's name",
    "path": "the picture's path under [storage].root",
    "event_id": "the event's id",
    "seq": "the frame's number in its burst",
}
DEFAULT_KEY = "{site}/{line}/{path}"
#: The fields that name one picture when a key has no {path}.
UNIQUE_WITHOUT_PATH = frozenset({"event_id", "rule", "camera", "seq"})


def key_template_problem(template: str) -> str | None:
    """Why `template` cannot name objects, or None when it can."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"not a valid template ({exc}); write fields as {{site}}, braces as {{{{ }}}}"
    fields = []
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in KEY_FIELDS:
            known = ", ".join(f"{{{name}}}" for name in KEY_FIELDS)
            return f"unknown field {{{field}}}; a key may use {known}"
        if spec or conversion:
            return f"field {{{field}}} takes no format or conversion"
        fields.append(field)
    # One event fires several rules, each on several cameras, each a burst of frames:
    # without {path}, only all four name one picture.
    if "path" not in fields and not UNIQUE_WITHOUT_PATH.issubset(fields):
        return (
            "the key must contain {path} (or {event_id}, {rule}, {camera} and {seq}), "
            "or pictures overwrite each other"
        )
    return None


@dataclass(frozen=True, slots=True)
class KeyFields:
    """What a key is rendered from: one saved picture and where it comes from."""

    site: str
    line: str
    camera: str
    rule: str
    path: str
    event_id: str
    seq: int


def render_key(template: str, fields: KeyFields) -> str:
    """The object key of one picture: no leading slash, no empty, `.` or `..` segment (a
    `[service].line` of ".." would otherwise climb out of its prefix, and minio refuses it)."""
    rendered = template.format_map({name: getattr(fields, name) for name in KEY_FIELDS})
    return "/".join(segment for segment in rendered.split("/") if segment not in ("", ".", ".."))
