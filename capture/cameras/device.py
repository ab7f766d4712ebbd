"""What the camera sections on one device share: request slots, the login back-off, learned auth.

Four NVR channels are four `[cameras.*]` sections but one device, one
account and one lockout counter. Cameras built for the same device key
(scheme, host, port, user) therefore share, through `DEVICES`:

- the request slots: at most `limit` requests in flight at the device, the
  smallest `max_concurrent` of the sections using it (the most careful
  setting wins, since one setting too high is enough to upset the device);
- the login back-off, per password: once the device rejected a password,
  no section with that password contacts it until the back-off runs out;
  a section with another password (a fixed one, after a reload) starts
  clean, because the back-off is about those credentials;
- what `auto` learned (the scheme) and the digest challenge answered
  pre-emptively (only by the credentials it was accepted with);
- which credentials the device accepted in this process (`proven`), and the
  login back-off shared with other processes through the storage root
  (capture.cameras.logins), keyed by device and user: while it runs, only
  credentials proven in this process reach the device, so a misconfigured
  section neither stops the correct channels of its NVR nor is retried by
  each `capture cameras` run;
- whether the device needs the lenient HTTP parser (capture.cameras.transport).

A camera attaches when it is built and detaches when closed (or garbage
collected). A hot reload builds the new cameras before the old ones are
closed, so the state of a device in use survives it; the last camera of a
device to close removes its entry, so reloads leave nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from capture.cameras.auth import AuthMemory
from capture.cameras.errors import AuthFailed, LockedOut
from capture.cameras.logins import SharedLogins
from capture.cameras.transport import LenientFlag
from capture.config.schema import CameraBase

Clock = Callable[[], float]
DeviceKey = tuple[str, str, int, str | None]

#: Per-process key of the password fingerprints: equal passwords match, none can be recovered.
_FINGERPRINT_KEY = os.urandom(16)


def device_key(config: CameraBase) -> DeviceKey:
    """The key the sections of one device share: scheme, host (case-insensitive), port, user."""
    return (config.scheme, config.host.lower(), config.effective_port, config.user)


def login_key(config: CameraBase) -> str:
    """The device and user as the shared back-off names them: `scheme://user@host:port`."""
    scheme, host, port, user = device_key(config)
    return f"{scheme}://{user or ''}@{host}:{port}"


def secret_material(config: CameraBase) -> bytes:
    """The section's secrets (password, session) as one unambiguous byte string, for hashing."""
    parts = []
    for name in config.secret_fields:
        secret = getattr(config, name, None)
        value = (secret.get_secret_value() if secret is not None else "").encode()
        parts.append(len(value).to_bytes(4, "big") + value)
    return b"".join(parts)


def credentials_fingerprint(config: CameraBase) -> bytes:
    """A keyed hash of the section's secrets (password, session): equal for equal credentials."""
    return hashlib.blake2b(secret_material(config), key=_FINGERPRINT_KEY, digest_size=16).digest()


class AuthBackoff:
    """Keeps a device untouched for a growing time after it rejected our credentials.

    Cameras lock accounts (Hikvision blocks the address for 30 min) after a
    few failed logins, so one confirmed rejection stops all requests with
    these credentials for `first_s`, doubling on each further rejection up
    to `max_s`; a success resets it. Shared by the sections of one device.
    """

    def __init__(self, clock: Clock, first_s: float = 60.0, max_s: float = 3600.0) -> None:
        self._clock = clock
        self.first_s = first_s
        self.max_s = max_s
        self._next_s = first_s
        self._until: float | None = None
        self._reason = ""
        self._lock = threading.Lock()

    def remaining(self) -> float | None:
        """Seconds until the device may be contacted again, or None when not backed off."""
        until = self._until
        if until is None:
            return None
        left = until - self._clock()
        return left if left > 0 else None

    def check(self, camera: str) -> None:
        """Raise `LockedOut` while backed off."""
        left = self.remaining()
        if left is not None:
            raise LockedOut(
                camera,
                f"not contacted for another {left:.0f} s: {self._reason}; fix the "
                "credentials and reload the configuration to retry at once",
                retry_after_s=left,
            )

    def reject(self, error: AuthFailed) -> float:
        """Start (or extend) the back-off after `error`; return its length in seconds."""
        device_says = error.retry_after_s if isinstance(error, LockedOut) else None
        with self._lock:
            now = self._clock()
            if self._until is not None and self._until > now:
                # A request sent before the back-off began, refused too: not a new rejection.
                if device_says and now + device_says > self._until:
                    self._until = now + device_says
                return self._until - now
            wait = max(self._next_s, device_says or 0.0)
            self._until = now + wait
            self._next_s = min(self._next_s * 2, self.max_s)
            self._reason = error.message
            return wait

    def reset(self) -> None:
        """Forget past rejections after a success."""
        if self._until is None and self._next_s == self.first_s:
            return  # the usual case, once per snapshot: nothing to forget, no lock taken
        with self._lock:
            self._next_s = self.first_s
            self._until = None


class DeviceSlots:
    """At most `limit` requests in flight at one device, whichever of its cameras sends them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight = 0
        self._changed = threading.Condition(threading.Lock())

    @property
    def limit(self) -> int:
        """Requests allowed in flight at once."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Requests in flight now."""
        return self._in_flight

    def acquire(self, timeout: float) -> bool:
        """Take a slot, waiting at most `timeout` seconds; False when none came free."""
        with self._changed:
            if self._in_flight < self._limit:  # the usual case: one uncontended lock
                self._in_flight += 1
                return True
            end = time.monotonic() + timeout
            while self._in_flight >= self._limit:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._in_flight += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._changed:
            self._in_flight -= 1
            self._changed.notify()

    def set_limit(self, limit: int) -> None:
        """Change the limit (a section joined or left); requests in flight finish as they are."""
        with self._changed:
            raised = limit > self._limit
            self._limit = limit
            if raised:
                self._changed.notify_all()


@dataclass(eq=False)
class _Holder:
    name: str
    max_concurrent: int
    fingerprint: bytes


@dataclass(eq=False)
class SharedDevice:
    """The state of one device key, shared by every camera section attached to it."""

    key: DeviceKey
    slots: DeviceSlots
    auth: AuthMemory = field(default_factory=AuthMemory)
    lenient: LenientFlag = field(default_factory=LenientFlag)
    holders: list[_Holder] = field(default_factory=list)
    backoffs: dict[bytes, AuthBackoff] = field(default_factory=dict)
    #: Fingerprints of the credentials the device accepted in this process.
    proven: set[bytes] = field(default_factory=set)
    #: The back-off shared with other processes, when a storage root gives one.
    logins: SharedLogins | None = None
    login_key: str = ""

    @property
    def address(self) -> str:
        """host:port, for messages."""
        return f"{self.key[1]}:{self.key[2]}"

    def camera_names(self) -> list[str]:
        """The sections attached now, sorted (a reloaded camera is named once)."""
        return sorted({holder.name for holder in self.holders})


class DeviceLease:
    """One camera's attachment to its device: the shared slots, back-off and auth memory."""

    def __init__(
        self, registry: DeviceRegistry, device: SharedDevice, holder: _Holder, backoff: AuthBackoff
    ) -> None:
        self.device = device
        self.slots = device.slots
        self.auth = device.auth
        self.backoff = backoff
        self.fingerprint = holder.fingerprint
        self._registry = registry
        self._holder = holder
        # A camera dropped without close() is detached later: the collector may run inside
        # any lock, so its callback only queues the detach, it never takes a lock itself.
        self._collected = weakref.finalize(self, registry._orphaned, device, holder)

    def release(self) -> None:
        """Detach from the device (idempotent); the last camera to leave removes its state."""
        if self._collected.detach() is not None:
            self._registry._detach(self.device, self._holder)


class DeviceRegistry:
    """The devices cameras are attached to now, by device key (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[DeviceKey, SharedDevice] = {}
        self._orphans: list[tuple[SharedDevice, _Holder]] = []

    def attach(
        self, name: str, config: CameraBase, clock: Clock, logins: SharedLogins | None = None
    ) -> DeviceLease:
        """Attach camera `name` to the device its config names, creating the state if new."""
        key = device_key(config)
        holder = _Holder(name, config.max_concurrent, credentials_fingerprint(config))
        with self._lock:
            self._detach_orphans()
            device = self._devices.get(key)
            if device is None:
                device = self._devices[key] = SharedDevice(key, DeviceSlots(config.max_concurrent))
            device.holders.append(holder)
            if logins is not None:
                device.logins, device.login_key = logins, login_key(config)
            device.slots.set_limit(min(h.max_concurrent for h in device.holders))
            backoff = device.backoffs.get(holder.fingerprint)
            if backoff is None:
                backoff = device.backoffs[holder.fingerprint] = AuthBackoff(clock)
        return DeviceLease(self, device, holder, backoff)

    def _detach(self, device: SharedDevice, holder: _Holder) -> None:
        with self._lock:
            self._detach_orphans()
            self._remove(device, holder)

    def _orphaned(self, device: SharedDevice, holder: _Holder) -> None:
        self._orphans.append((device, holder))  # atomic; handled at the next registry call

    def _detach_orphans(self) -> None:
        while self._orphans:
            self._remove(*self._orphans.pop())

    def _remove(self, device: SharedDevice, holder: _Holder) -> None:
        device.holders.remove(holder)
        if not device.holders:
            if self._devices.get(device.key) is device:
                del self._devices[device.key]
            return
        device.slots.set_limit(min(h.max_concurrent for h in device.holders))
        if not any(h.fingerprint == holder.fingerprint for h in device.holders):
            device.backoffs.pop(holder.fingerprint, None)

    def __len__(self) -> int:
        """How many devices have cameras attached."""
        with self._lock:
            self._detach_orphans()
            return len(self._devices)

    def get(self, config: CameraBase) -> SharedDevice | None:
        """The shared state of the device `config` names, if any camera is attached to it."""
        with self._lock:
            self._detach_orphans()
            return self._devices.get(device_key(config))


DEVICES = DeviceRegistry()
"""The process's registry; every `HttpCamera` attaches to it unless given another."""
