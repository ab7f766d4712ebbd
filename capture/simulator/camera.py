"""What one simulated camera is: its vendor, credentials, auth scheme and picture size.

Kept apart from the server so the CLI, the TOML loader and the tests can
describe cameras without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Vendor = Literal["hikvision", "dahua", "edimax", "xrc", "mjpeg", "generic"]
VENDORS: tuple[Vendor, ...] = get_args(Vendor)
AuthMode = Literal["digest", "basic", "query", "none"]

AUTH_MODES: tuple[str, ...] = ("digest", "basic", "query", "none")
DIGEST_ALGORITHMS: tuple[str, ...] = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")

DEFAULT_AUTH: dict[str, AuthMode] = {
    "hikvision": "digest",
    "dahua": "digest",
    "edimax": "basic",
    "mjpeg": "basic",
    "xrc": "query",
    "generic": "none",
}
"""How each vendor's devices usually authenticate out of the box."""

DEFAULT_PATH: dict[str, str] = {
    "edimax": "/snapshot.jpg",
    "mjpeg": "/mjpg/video.mjpg",
    "generic": "/snap.jpg",
}
"""Where the single endpoint of the path-based vendors lives unless `path` says otherwise."""


class SimulatorConfigError(ValueError):
    """A simulated camera or fault setting is invalid; the message names the camera."""


@dataclass(frozen=True)
class SimulatedCamera:
    """One device the simulator plays: name, vendor, credentials and picture size.

    `auth` and `path` default per vendor (see `DEFAULT_AUTH`, `DEFAULT_PATH`).
    Several `digest_algorithms` produce one `WWW-Authenticate` challenge each,
    in that order, each with its own nonce; `digest_qop=None` gives RFC 2069
    challenges. `channels` > 1 makes it an NVR/DVR with that many inputs.
    """

    name: str
    vendor: Vendor
    user: str = "admin"
    password: str = field(default="sim-password", repr=False)
    auth: AuthMode | None = None
    digest_algorithms: tuple[str, ...] = ("MD5",)
    digest_qop: str | None = "auth"
    nonce_ttl_s: float = 300.0
    channels: int = 1
    width: int = 640
    height: int = 480
    path: str | None = None
    fps: float = 5.0
    line: str = ""

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise SimulatorConfigError(f"simulated camera {self.name!r}: " + "; ".join(problems))
        if self.auth is None:
            object.__setattr__(self, "auth", DEFAULT_AUTH[self.vendor])
        if self.path is None and self.vendor in DEFAULT_PATH:
            object.__setattr__(self, "path", DEFAULT_PATH[self.vendor])
        object.__setattr__(self, "digest_algorithms", tuple(self.digest_algorithms))

    def _problems(self) -> list[str]:
        problems = []
        if not self.name or any(c in self.name for c in "/ \t\r\n"):
            problems.append("name must be non-empty, without spaces or '/'")
        if self.vendor not in VENDORS:
            problems.append(f"vendor must be one of {', '.join(VENDORS)}, not {self.vendor!r}")
        if self.auth is not None and self.auth not in AUTH_MODES:
            problems.append(f"auth must be one of {', '.join(AUTH_MODES)}, not {self.auth!r}")
        unknown = [a for a in self.digest_algorithms if a not in DIGEST_ALGORITHMS]
        if unknown or not self.digest_algorithms:
            problems.append(f"digest_algorithms must be among {', '.join(DIGEST_ALGORITHMS)}")
        if self.digest_qop not in ("auth", None):
            problems.append("digest_qop must be 'auth' or None (RFC 2069)")
        if self.nonce_ttl_s < 0:
            problems.append("nonce_ttl_s must be >= 0")
        if not 1 <= self.channels <= 64:
            problems.append("channels must be between 1 and 64")
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            problems.append("width and height must be between 16 and 4096")
        if self.path is not None and not self.path.startswith("/"):
            problems.append("path must start with '/'")
        if not 0 < self.fps <= 60:
            problems.append("fps must be in (0, 60]")
        return problems

    @property
    def effective_auth(self) -> AuthMode:
        """The auth scheme after applying the vendor default."""
        assert self.auth is not None  # set in __post_init__
        return self.auth
