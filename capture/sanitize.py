"""File names from untrusted text: every path component valid and visible on ext4, FAT/exFAT and SMB.

A value a trigger sends may hold anything: `../`, NUL, a right-to-left override,
300 characters, `CON`. `clean` replaces, in a value, every character that could
split a path or break a file system by `_`: separators, control and format
characters (bidi overrides, zero-width), surrogates, line/paragraph separators,
and `<>:"|?*`. `finish` makes an assembled component a name: NFC-normalized, no
leading dot or space (no hidden files, never `.` or `..`), no trailing dot or
space, never a Windows-reserved name (`CON` becomes `_CON`), at most 255 bytes
of UTF-8 (cut between characters), never empty.

Why not pathvalidate: its `sanitize_filename` (3.3.1, platform "universal") was
checked against these rules and differs where a user would feel it. It keeps
`.` and `..` as names (a `{line}` folder of `..` would leave the storage root)
and leading dots (hidden files); keeps bidi overrides, zero-width characters,
C1 controls and line separators (`gate<RLO>gpj.exe` shows as `gateexe.jpg`);
raises on a lone surrogate, which JSON payloads can carry; renames `CON` to
`CON_` where we have always written `_CON` (names would change under existing
archives), misses `CONIN$`, `CONOUT$` and `NUL .tar`, and leaves `CON.` as
`CON_.`, with the trailing dot Windows drops; returns an empty name for empty
text; cuts at 260 bytes before the template's hash-marked shortening could
keep two long values apart; and costs about 15 us per call, twice a whole
default render. Wrapping it would mean undoing or redoing each of these, so
the rules stay here, in one `str.translate` for clean ASCII-plus-symbols and
one pass over `unicodedata` categories otherwise. pathvalidate still checks
them: the template tests validate every name they render with its
`validate_filename(..., platform="universal")`.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_PATH_BYTES",
    "UNSAFE_CATEGORIES",
    "WINDOWS_RESERVED",
    "byte_length",
    "clean",
    "finish",
    "is_reserved",
    "storage_reserved",
    "truncate",
]

#: Longest path component in bytes of UTF-8: the limit of ext4, and within FAT/exFAT's 255 UTF-16 units.
MAX_COMPONENT_BYTES = 255
#: Longest rendered relative path in bytes of UTF-8, leaving room for the storage root under PATH_MAX.
MAX_PATH_BYTES = 1024

#: Device names Windows (and so an SMB share) refuses as a file's base name, in any case.
WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789¹²³"]
)
#: What the storage keeps for itself at its root: `latest/` and the journal's files.
LATEST_DIR = "latest"
JOURNAL_NAME = "journal.sqlite3"
#: Control, format (bidi overrides, zero-width), surrogate and line/paragraph separator chars.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Characters that separate folders or are forbidden on FAT/exFAT and SMB (besides the categories).
FORBIDDEN = '/\\<>:"|?*'

# Characters that separate folders, end C strings, or are forbidden on FAT/exFAT and SMB.
_ASCII_UNSAFE = {code: "_" for code in [*range(0x20), 0x7F]} | {
    ord(char): "_" for char in FORBIDDEN
}
_ASCII_UNSAFE_SEARCH = re.compile(r'[\x00-\x1f\x7f/\\<>:"|?*]').search
_RESERVED_STARTS = frozenset(name[:3] for name in WINDOWS_RESERVED)


def clean(text: str) -> str:
    """Replace every character that could split a path or break a file system by '_'."""
    if len(text) > MAX_PATH_BYTES:
        text = text[:MAX_PATH_BYTES]  # it is cut to fit anyway; a 16 MB payload costs no more
    if text.isascii():
        return text if _ASCII_UNSAFE_SEARCH(text) is None else text.translate(_ASCII_UNSAFE)
    return "".join(
        "_" if char in FORBIDDEN or unicodedata.category(char) in UNSAFE_CATEGORIES else char
        for char in text
    )


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` bytes of UTF-8 without splitting a character."""
    if len(text) * 4 <= limit:
        return text
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def is_reserved(name: str) -> bool:
    """Whether Windows reads `name` as a device: its base before the first dot, trailing spaces ignored."""
    return name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_RESERVED


def finish(component: str, limit: int = MAX_COMPONENT_BYTES) -> str:
    """Make an assembled, cleaned component a valid, visible name of at most `limit` bytes."""
    if (
        component.isascii()
        and component
        and component[0] not in " ."
        and component[-1] not in " ."
        and len(component) * 4 <= limit
        and component[:3].upper() not in _RESERVED_STARTS
    ):
        return component  # the common case, decided without copying
    if not component.isascii():
        # Per component, not per value: a value may end in 'e' and the next begin with U+0301.
        component = unicodedata.normalize("NFC", component)
    component = _strip_edges(component)
    if len(component) * 4 > limit:
        component = _strip_edges(truncate(component, limit))
    if not component:
        return "_"
    if is_reserved(component):
        component = truncate("_" + component, limit)
    return component


def _strip_edges(component: str) -> str:
    """Without dots and spaces at either end, Unicode's spaces too (a no-break space alone is
    no visible name; a PLC's "Line 3\u00a0" is Line 3)."""
    start, end = 0, len(component)
    while start < end and (component[start] == "." or component[start].isspace()):
        start += 1
    while end > start and (component[end - 1] == "." or component[end - 1].isspace()):
        end -= 1
    return component[start:end]


def byte_length(text: str) -> int:
    """Length of `text` in bytes of UTF-8, without encoding ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def storage_reserved(top: str) -> bool:
    """Whether `top`, the first component of a path under the storage root, is one the storage
    keeps for itself; in any case, since `Latest` is `latest` on FAT/exFAT."""
    lowered = top.lower()
    return lowered == LATEST_DIR or lowered.startswith(JOURNAL_NAME)
