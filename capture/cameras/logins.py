"""The login back-off every process of one storage root shares: the service, `capture snap`, `capture cameras`.

A camera account counts failed logins whoever sends them, so the back-off
after a rejected password must outlive a one-shot command and reach the
running service. It lives in `<storage root>/.camera-logins.json`, one entry
per device and user (`scheme://user@host:port`): until when (wall clock, so
every process reads it alike), the next back-off length, the reason the
device gave, and a 16-bit salted tag of each password it rejected in that
period. The tags hold the rejected passwords and nothing else: a section
with the right password on the same device and user keeps working, and a
corrected password is tried at once (the technician fixes the secret and
reloads, or runs `capture snap` again), as within one process
(capture.cameras.device). 16 bits cannot give a password back; one password
in 65,536 shares a rejected one's tag and then waits out the back-off.

Reads are cheap: the file is parsed again only when `os.stat` says it
changed. Writes happen only on a rejection, under `fcntl.flock` on a side
lock file, through a temporary file and a rename (mode 0600), so a reader
never sees half a file and two processes never lose each other's entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

STATE_NAME = ".camera-logins.json"
LOCK_NAME = ".camera-logins.lock"
FIRST_S = 60.0
MAX_S = 3600.0

Clock = Callable[[], float]


@dataclass(frozen=True)
class Hold:
    """A device+user nobody may log in to without proven credentials, for `left_s` more seconds."""

    device: str
    left_s: float
    reason: str
    path: Path


@dataclass
class _Entry:
    """One device+user's back-off, as the state file keeps it (times on the wall clock).

    `tags` None: an entry without tags (hand-edited, or torn): every password
    is held, the safe side.
    """

    until: float
    next_s: float
    reason: str
    salt: str
    tags: list[str] | None

    @classmethod
    def from_json(cls, value: object) -> _Entry | None:
        """The entry a JSON value describes, or None when it cannot be one."""
        if not isinstance(value, dict):
            return None
        try:
            until, next_s = float(value["until"]), float(value.get("next_s", FIRST_S))
        except (KeyError, TypeError, ValueError):
            return None
        salt, tags = value.get("salt"), value.get("tags")
        return cls(
            until=until,
            next_s=next_s,
            reason=str(value.get("reason", "")),
            salt=salt if isinstance(salt, str) else "",
            tags=[str(tag) for tag in tags] if isinstance(tags, list) and salt else None,
        )

    def as_json(self) -> dict[str, object]:
        """The entry as the state file writes it."""
        return {
            "until": self.until,
            "next_s": self.next_s,
            "reason": self.reason,
            "salt": self.salt,
            "tags": self.tags,
        }

    def holds(self, secrets: bytes) -> bool:
        """Whether these secrets were rejected in the entry's period."""
        if self.tags is None:
            return True  # no tags to compare: hold every password (the safe side)
        try:
            return _tag(self.salt, secrets) in self.tags
        except ValueError:  # a salt that is not hex
            return True


class SharedLogins:
    """The back-off entries of one state file, shared by every camera of this process using it."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        self.path = path
        self._lock_path = path.with_name(LOCK_NAME)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, _Entry] = {}

    def hold(self, device: str, secrets: bytes) -> Hold | None:
        """The back-off in force for `device` (`scheme://user@host:port`) and these secrets, or None.

        Other secrets than the rejected ones (a corrected password) are not held.
        """
        with self._lock:
            self._refresh()
            entry = self._entries.get(device)
        if entry is None or not entry.holds(secrets):
            return None
        left = entry.until - self._clock()
        if left <= 0:
            return None
        return Hold(device, left, entry.reason, self.path)

    def reject(
        self, device: str, reason: str, secrets: bytes, device_says_s: float | None = None
    ) -> float:
        """Record a rejected login at `device`; start or extend its back-off, return its length."""
        with self._lock, self._exclusive():
            self._stamp = None
            self._refresh()
            now = self._clock()
            entry = self._entries.get(device)
            held = entry if entry is not None and entry.until > now else None
            if held is not None and held.holds(secrets):
                # Refused while already backed off (a request sent before it began): one rejection.
                if device_says_s and now + device_says_s > held.until:
                    held.until = now + device_says_s
                    self._write(now)
                return max(held.until, now + (device_says_s or 0.0)) - now
            # The device counts every failed login, whatever the password: keep doubling.
            next_s = entry.next_s if entry is not None else FIRST_S
            wait = max(next_s, device_says_s or 0.0)
            salt = held.salt if held is not None and held.tags is not None else os.urandom(8).hex()
            tags = held.tags if held is not None and held.tags is not None else []
            self._entries[device] = _Entry(
                until=now + wait,
                next_s=min(next_s * 2, MAX_S),
                reason=reason,
                salt=salt,
                tags=[*tags, _tag(salt, secrets)],
            )
            self._write(now)
            return wait

    def accepted(self, device: str, secrets: bytes) -> None:
        """The device took these secrets: if it had rejected them, they are no longer held.

        Accepting another password (a correct section beside a wrong one) holds
        the wrong one still. A write only when something changes.
        """
        with self._lock:
            self._refresh()
            entry = self._entries.get(device)
            if entry is None or not entry.holds(secrets):
                return  # the usual case: nothing was held
            with self._exclusive():
                self._stamp = None
                self._refresh()
                entry = self._entries.get(device)
                if entry is None or not entry.holds(secrets):
                    return
                mine = _tag(entry.salt, secrets) if entry.tags is not None else None
                entry.tags = [tag for tag in entry.tags or [] if tag != mine]
                if not entry.tags:
                    del self._entries[device]
                self._write(self._clock())

    # ------------------------------------------------------------------ the file

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._entries = None, {}  # deleted: every back-off cleared
            return
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._stamp:
            return
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            entries = loaded["devices"] if isinstance(loaded, dict) else {}
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("file=%s event=unreadable error=%s; starting empty", self.path, exc)
            entries = {}
        self._stamp = stamp
        parsed = {key: _Entry.from_json(value) for key, value in entries.items()}
        self._entries = {key: entry for key, entry in parsed.items() if entry is not None}

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Made by `sudo capture cameras`, a root-owned lock would keep the service
            # from sharing its back-off ever after: it goes to the service's user too.
            _give_to_folder_owner(self._lock_path, self.path.parent)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _write(self, now: float) -> None:
        # An entry expired for longer than the longest back-off is history: drop it.
        self._entries = {
            key: entry for key, entry in self._entries.items() if entry.until + MAX_S > now
        }
        devices = {key: entry.as_json() for key, entry in self._entries.items()}
        text = json.dumps({"devices": devices}, indent=1, sort_keys=True)
        folder = self.path.parent
        descriptor, temporary = tempfile.mkstemp(prefix=f"{STATE_NAME}.", dir=folder)  # 0600
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            _give_to_folder_owner(Path(temporary), folder)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _tag(salt: str, secrets: bytes) -> str:
    """16 bits of a salted hash of the secrets: tells a changed password, gives none back."""
    return hashlib.blake2b(secrets, key=bytes.fromhex(salt), digest_size=2).hexdigest()


def _give_to_folder_owner(path: Path, folder: Path) -> None:
    """Run as root (`sudo capture cameras`), leave the file to the service's user, who owns the root."""
    if os.geteuid() != 0:
        return
    stat = folder.stat()
    os.chown(path, stat.st_uid, stat.st_gid)


_SHARED: dict[Path, SharedLogins] = {}
_SHARED_LOCK = threading.Lock()


def shared_logins(storage_root: Path) -> SharedLogins | None:
    """The state of `storage_root`, one instance per process; None when the folder is unusable.

    Without a writable storage root (the service never ran here, or the user
    may not write it) there is nothing to share: cameras keep the back-off
    in their own process only, as unit tests that build cameras directly do.
    """
    root = Path(storage_root)
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        return None
    path = (root / STATE_NAME).resolve()
    with _SHARED_LOCK:
        shared = _SHARED.get(path)
        if shared is None:
            shared = _SHARED[path] = SharedLogins(path)
        return shared
