"""Snapshot files for URLs: refuses every path that is not a picture inside the storage root.

A URL path is decoded once by the server and checked here part by part
('..', '.', hidden names, backslashes, NUL, anything but .jpg/.jpeg), then
resolved with symbolic links followed and checked to be inside the root
again, so neither an encoded `%2e%2e` nor a link planted in the storage
folder leads anywhere else. The journal and the storage's own files are
never served: they are not pictures.

Every picture URL the API hands out carries `?v=<version>` (modification
time and size): retention may delete a snapshot and a later one may take the
same name, and only a URL that names the file's version may be cached as
immutable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from capture.sanitize import LATEST_DIR
from capture.storage import SNAPSHOT_SUFFIXES

IMAGE_PREFIX = "/media/"
THUMB_PREFIX = "/thumbs/"
_MAX_PATH_CHARS = 1024


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A picture found under the root, with what HTTP caching needs."""

    relative: str
    path: Path
    size: int
    mtime_ns: int
    inode: int

    @property
    def etag(self) -> str:
        """Changes whenever the file is replaced (latest/) or rewritten."""
        return f'"{self.inode:x}-{self.mtime_ns:x}-{self.size:x}"'

    @property
    def version(self) -> str:
        """The `v` of this file's URLs: a new file at the same path gets a new one."""
        return file_version(self.mtime_ns, self.size)

    @property
    def last_modified(self) -> str:
        """The file's modification time as an HTTP date."""
        return formatdate(self.mtime_ns / 1e9, usegmt=True)

    @property
    def is_latest(self) -> bool:
        """latest/ pictures are replaced in place, so browsers must revalidate them."""
        return self.relative.startswith(f"{LATEST_DIR}/")


def file_version(mtime_ns: int, size: int) -> str:
    """A picture's version for its URL, from what `stat` says about it."""
    return f"{mtime_ns:x}-{size:x}"


def safe_relative(relative: str) -> PurePosixPath | None:
    """The path as storage-relative parts, or None when any part could leave the folder."""
    if not relative or len(relative) > _MAX_PATH_CHARS:
        return None
    if "\\" in relative or "\x00" in relative or relative.startswith("/"):
        return None
    parts = relative.split("/")
    if any(not part or part in (".", "..") or part.startswith(".") for part in parts):
        return None
    path = PurePosixPath(*parts)
    if path.suffix.lower() not in SNAPSHOT_SUFFIXES:
        return None
    return path


class Media:
    """Finds pictures under the storage root and names their URLs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root_resolved = self.root.resolve()

    def find(self, relative: str) -> MediaFile | None:
        """The picture at a decoded, storage-relative URL path; None if refused or missing."""
        safe = safe_relative(relative)
        if safe is None:
            return None
        try:
            resolved = (self._root_resolved / safe).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symbolic-link loop
            return None
        if not resolved.is_relative_to(self._root_resolved):
            return None
        try:
            stat = resolved.stat()
        except OSError:
            return None
        if not os.path.isfile(resolved):
            return None
        return MediaFile(safe.as_posix(), resolved, stat.st_size, stat.st_mtime_ns, stat.st_ino)

    def latest(self, camera: str) -> MediaFile | None:
        """The camera's newest picture (latest/<camera>.jpg), if any."""
        return self.find(f"{LATEST_DIR}/{camera}.jpg")

    def version(self, relative: str) -> str | None:
        """The current version of a picture the service wrote, or None when it is gone.

        One `stat`, no checks: `relative` comes from the journal or the engine,
        not from a URL, and serving checks the path anyway.
        """
        try:
            stat = os.stat(self.root / relative)
        except (OSError, ValueError):
            return None
        return file_version(stat.st_mtime_ns, stat.st_size)

    @staticmethod
    def image_url(relative: str, version: str | None = None) -> str:
        """URL of the full picture; `version` makes a new file at the same path a new URL."""
        return IMAGE_PREFIX + quote(relative) + (f"?v={version}" if version else "")

    @staticmethod
    def thumb_url(relative: str, version: str | None = None) -> str:
        """URL of the picture's thumbnail."""
        return THUMB_PREFIX + quote(relative) + (f"?v={version}" if version else "")
